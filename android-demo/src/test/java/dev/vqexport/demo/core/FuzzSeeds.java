package dev.vqexport.demo.core;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/** The valid inputs the fuzzers start from: hand-made .vqm files, and the test vectors when present. */
final class FuzzSeeds {
    private FuzzSeeds() {
    }

    static final class Seed {
        final String name;
        final byte[] data;
        /** Where the embedded .vqm and the "vqexport" JSON lie in a .tflite; -1 when absent. */
        int vqmAt = -1;
        int vqmLen;
        int jsonAt = -1;
        int jsonLen;

        Seed(String name, byte[] data) {
            this.name = name;
            this.data = data;
        }
    }

    /** One small file per method, raw tensors of several dtypes, f16 codebooks: always available. */
    static List<Seed> tinyVqm() {
        List<Seed> out = new ArrayList<Seed>();
        TinyVqm a = new TinyVqm();
        a.recs.add(VqmReaderTest.kmeans2x3());
        TinyVqm.Rec bin = new TinyVqm.Rec("bin", 1, new int[] {1, 4});
        bin.k = 2;
        bin.bits = 1;
        bin.secs.add(new TinyVqm.Sec(1, 1, new int[] {2}, TinyVqm.f16(0xB800, 0x3800)));
        bin.secs.add(new TinyVqm.Sec(2, 5, new int[] {4}, new byte[] {0b0110}));
        a.recs.add(bin);
        TinyVqm.Rec raw = new TinyVqm.Rec("bn.num_batches_tracked", 0, new int[0]);
        raw.secs.add(new TinyVqm.Sec(0, 2, new int[0], TinyVqm.i64(7)));
        a.recs.add(raw);
        a.metadata = "{\"format\": \"vqm\", \"producer\": \"fuzz\", \"layers\": {\"fc.weight\": {\"method\": \"kmeans\","
                + " \"shape\": [2, 3]}}, \"input\": {\"shape\": [1, 3], \"layout\": \"NC\"}, \"labels\": [\"a\", \"b\"]}";
        out.add(new Seed("tiny-kmeans-binary-raw", a.build()));

        TinyVqm p = new TinyVqm();
        byte[] cb = TinyVqm.f32(1, 2, 3, 4, 5, 6, 7, 8);
        TinyVqm.Rec cols = new TinyVqm.Rec("cols", 3, new int[] {2, 4});
        cols.k = 2;
        cols.d = 2;
        cols.bits = 1;
        cols.secs.add(new TinyVqm.Sec(1, 0, new int[] {2, 2, 2}, cb));
        cols.secs.add(new TinyVqm.Sec(2, 5, new int[] {2, 2}, new byte[] {0b1001}));
        TinyVqm.Rec rows = new TinyVqm.Rec("rows", 3, new int[] {4, 2});
        rows.k = 2;
        rows.d = 2;
        rows.rows = 1;
        rows.bits = 1;
        rows.secs.add(new TinyVqm.Sec(1, 0, new int[] {2, 2, 2}, cb));
        rows.secs.add(new TinyVqm.Sec(2, 5, new int[] {2, 2}, new byte[] {0b1001}));
        p.recs.add(cols);
        p.recs.add(rows);
        out.add(new Seed("tiny-pq", p.build()));

        TinyVqm q = new TinyVqm();
        TinyVqm.Rec rq = new TinyVqm.Rec("rq", 4, new int[] {2, 2});
        rq.k = 2;
        rq.stages = 2;
        rq.bits = 1;
        rq.secs.add(new TinyVqm.Sec(1, 0, new int[] {2, 2, 2}, TinyVqm.f32(1, 1, 2, 2, 0.25f, 0.5f, -0.25f, -0.5f)));
        rq.secs.add(new TinyVqm.Sec(2, 5, new int[] {2, 2}, new byte[] {0b0110}));
        TinyVqm.Rec svd = new TinyVqm.Rec("svd", 5, new int[] {2, 3});
        svd.rank = 1;
        svd.secs.add(new TinyVqm.Sec(3, 0, new int[] {2, 1}, TinyVqm.f32(2, -1)));
        svd.secs.add(new TinyVqm.Sec(4, 1, new int[] {1, 3}, TinyVqm.f16(0x3C00, 0x3800, 0x4200)));
        q.recs.add(rq);
        q.recs.add(svd);
        out.add(new Seed("tiny-rq-svd", q.build()));
        return out;
    }

    /** The tiny files plus every .vqm of the test vectors (all methods, index widths 1..10). */
    static List<Seed> vqm(Path vectors) throws IOException {
        List<Seed> out = tinyVqm();
        Path dir = vectors == null ? null : vectors.resolve("vqm");
        if (dir != null && Files.isDirectory(dir)) {
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : (Iterable<Path>) s.sorted()::iterator) {
                    if (p.toString().endsWith(".vqm")) {
                        out.add(new Seed(p.getFileName().toString(), Files.readAllBytes(p)));
                    }
                }
            }
        }
        return out;
    }

    /** The decode="load" .tflite files of the test vectors (and a plain one); empty without vectors. */
    static List<Seed> tflite(Path vectors) throws IOException {
        List<Seed> out = new ArrayList<Seed>();
        Path dir = vectors == null ? null : vectors.resolve("tflite");
        if (dir == null || !Files.isDirectory(dir)) {
            return out;
        }
        for (String n : new String[] {"load.tflite", "load-bad-offset.tflite", "load-dup-slot.tflite", "model.tflite"}) {
            Path p = dir.resolve(n);
            if (!Files.isRegularFile(p)) {
                continue;
            }
            Seed s = new Seed(n, Files.readAllBytes(p));
            byte[] vqm = TfliteMetadata.find(s.data, TfliteExternal.EMBED_NAME);
            byte[] json = TfliteMetadata.find(s.data, "vqexport");
            if (vqm != null && json != null) {
                s.vqmAt = indexOf(s.data, vqm);
                s.vqmLen = vqm.length;
                s.jsonAt = indexOf(s.data, json);
                s.jsonLen = json.length;
            }
            out.add(s);
        }
        return out;
    }

    static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
