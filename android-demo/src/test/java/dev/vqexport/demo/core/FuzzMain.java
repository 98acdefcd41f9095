package dev.vqexport.demo.core;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;

/**
 * The long-running fuzzer (issue 14 "Fuzzing, kept in the repo"); FuzzTest runs the same with a
 * small budget. From android-demo/, after `mvn test-compile` and make_test_vectors.py:
 *
 * <pre>
 *   java -Xmx512m -cp target/classes:target/test-classes dev.vqexport.demo.core.FuzzMain \
 *       --target vqm --n 1000000 --seed 1 --vectors target/vectors --out target/fuzz
 * </pre>
 *
 * Prints outcome counts, unexpected exception types (with an example each), hangs over
 * --hang-seconds, the slowest input and the peak heap; saves unexpected, hanging and slowest
 * inputs under --out. Exits 1 when anything unexpected happened, 2 on bad arguments.
 */
public final class FuzzMain {
    private FuzzMain() {
    }

    public static void main(String[] args) throws Exception {
        String target = "vqm";
        long n = 10_000;
        long seed = 1;
        Path vectors = Paths.get("target/vectors");
        File out = null;
        long hangSeconds = 10;
        long maxDecoded = VqmLimits.DEFAULT_MAX_DECODED_BYTES;
        long progress = 0;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = i + 1 < args.length ? args[i + 1] : null;
            if (v == null) {
                usage("missing value for " + a);
            }
            i++;
            switch (a) {
                case "--target": target = v; break;
                case "--n": n = Long.parseLong(v); break;
                case "--seed": seed = Long.parseLong(v); break;
                case "--vectors": vectors = Paths.get(v); break;
                case "--out": out = new File(v); break;
                case "--hang-seconds": hangSeconds = Long.parseLong(v); break;
                case "--max-decoded-bytes": maxDecoded = Long.parseLong(v); break;
                case "--progress": progress = Long.parseLong(v); break;
                default: usage("unknown option " + a);
            }
        }
        Fuzzer.Target t;
        List<FuzzSeeds.Seed> seeds;
        if (target.equals("vqm")) {
            t = Fuzzer.Target.VQM;
            seeds = FuzzSeeds.vqm(vectors);
        } else if (target.equals("tflite")) {
            t = Fuzzer.Target.TFLITE;
            seeds = FuzzSeeds.tflite(vectors);
            if (seeds.isEmpty()) {
                usage("no .tflite seeds under " + vectors + "/tflite: run make_test_vectors.py first");
            }
        } else {
            usage("--target must be vqm or tflite");
            return;
        }
        File cache = Files.createTempDirectory("vqx-fuzz-cache").toFile();
        System.out.println("fuzz " + t + ": seed " + seed + ", " + n + " inputs from " + seeds.size() + " seed files, "
                + "max decoded " + maxDecoded + " bytes, hang limit " + hangSeconds + " s");
        Fuzzer.Report r = new Fuzzer(t, seeds, seed, new VqmLimits(maxDecoded, VqmLimits.DEFAULT_MAX_RATIO), cache)
                .run(n, hangSeconds * 1000, out, progress);
        System.out.print(r.summary());
        File[] left = cache.listFiles();
        System.out.println("files left in the cache folder: " + (left == null ? 0 : left.length));
        System.exit(r.unexpectedTotal() == 0 ? 0 : 1);
    }

    private static void usage(String why) {
        System.err.println("FuzzMain: " + why);
        System.err.println("usage: FuzzMain [--target vqm|tflite] [--n N] [--seed S] [--vectors DIR] [--out DIR]"
                + " [--hang-seconds 10] [--max-decoded-bytes B] [--progress EVERY]");
        System.exit(2);
    }
}
