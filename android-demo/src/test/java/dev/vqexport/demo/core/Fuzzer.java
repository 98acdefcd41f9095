package dev.vqexport.demo.core;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Feeds mutated inputs to VqmReader (+ decode) or TfliteExternal and sorts the outcomes. Allowed:
 * success, or one of the project's checked exceptions (VqmException, TfliteFormatException, an
 * IOException from the loader) whose message is one line naming the file. Anything else (a
 * runtime exception, OutOfMemoryError, StackOverflowError, a message without the file's name) is
 * unexpected; so is an input that runs longer than the hang limit. Deterministic for a seed.
 */
final class Fuzzer {
    enum Target { VQM, TFLITE }

    /** What the decode may cost per input in the fuzzer: the decode of the first 2^20 elements of a tensor. */
    static final int DECODE_ELEMENTS = 1 << 20;
    static final String VQM_NAME = "fuzz.vqm";
    static final String TFLITE_NAME = "fuzz.tflite";

    static final class Report {
        final Target target;
        long inputs;
        final Map<String, Long> outcomes = new TreeMap<String, Long>();
        final Map<String, Long> unexpected = new TreeMap<String, Long>();
        final Map<String, String> examples = new TreeMap<String, String>();
        long hangs;
        long slowestNanos;
        long slowestIndex = -1;
        String slowestOutcome = "";
        long peakHeapBytes;
        double seconds;

        Report(Target target) {
            this.target = target;
        }

        long unexpectedTotal() {
            long n = hangs;
            for (long v : unexpected.values()) {
                n += v;
            }
            return n;
        }

        String summary() {
            StringBuilder b = new StringBuilder();
            b.append(String.format("fuzz %s: %d inputs in %.1f s (%.0f/s), unexpected %d, hangs %d, slowest #%d %.1f ms (%s),"
                            + " peak heap %.1f MiB%n", target, inputs, seconds, inputs / Math.max(seconds, 1e-9),
                    unexpectedTotal(), hangs, slowestIndex, slowestNanos / 1e6, slowestOutcome, peakHeapBytes / 1048576.0));
            for (Map.Entry<String, Long> e : outcomes.entrySet()) {
                b.append(String.format("  %-40s %d%n", e.getKey(), e.getValue()));
            }
            for (Map.Entry<String, Long> e : unexpected.entrySet()) {
                b.append(String.format("  UNEXPECTED %-29s %d  e.g. %s%n", e.getKey(), e.getValue(), examples.get(e.getKey())));
            }
            return b.toString();
        }
    }

    private final Target target;
    private final List<FuzzSeeds.Seed> seeds;
    private final long seed;
    private final VqmLimits limits;
    private final File cacheDir;

    Fuzzer(Target target, List<FuzzSeeds.Seed> seeds, long seed, VqmLimits limits, File cacheDir) {
        if (seeds.isEmpty()) {
            throw new IllegalArgumentException("no seed inputs for " + target);
        }
        this.target = target;
        this.seeds = seeds;
        this.seed = seed;
        this.limits = limits;
        this.cacheDir = cacheDir;
    }

    /** Runs {@code n} inputs; unexpected and the slowest inputs are written to {@code saveDir} when given. */
    Report run(long n, long hangMillis, File saveDir, long progressEvery) throws IOException, InterruptedException {
        Report r = new Report(target);
        FuzzMutator mut = new FuzzMutator(seed);
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP) {
                p.resetPeakUsage();
            }
        }
        ExecutorService exec = Executors.newSingleThreadExecutor(daemon());
        long t0 = System.nanoTime();
        byte[] slowest = null;
        try {
            for (long i = 0; i < n; i++) {
                FuzzSeeds.Seed s = seeds.get(mut.random().nextInt(seeds.size()));
                final byte[] input = target == Target.VQM ? mut.vqm(s.data)
                        : mut.tflite(s.data, s.vqmAt, s.vqmLen, s.jsonAt, s.jsonLen);
                long start = System.nanoTime();
                Future<String> f = exec.submit(() -> runOne(input));
                String outcome;
                try {
                    outcome = f.get(hangMillis, TimeUnit.MILLISECONDS);
                } catch (TimeoutException e) {
                    f.cancel(true);
                    exec.shutdownNow();
                    exec = Executors.newSingleThreadExecutor(daemon());
                    r.hangs++;
                    save(saveDir, "hang-" + i, input);
                    outcome = "HANG";
                } catch (ExecutionException e) {
                    outcome = unexpected(r, e.getCause(), i, input, saveDir);
                }
                long took = System.nanoTime() - start;
                if (took > r.slowestNanos) {
                    r.slowestNanos = took;
                    r.slowestIndex = i;
                    r.slowestOutcome = outcome;
                    slowest = input;
                }
                r.outcomes.merge(outcome, 1L, Long::sum);
                r.inputs++;
                if (progressEvery > 0 && (i + 1) % progressEvery == 0) {
                    r.seconds = (System.nanoTime() - t0) / 1e9;
                    r.peakHeapBytes = peakHeap();
                    System.out.print(r.summary());
                    System.out.flush();
                }
            }
        } finally {
            exec.shutdownNow();
        }
        r.seconds = (System.nanoTime() - t0) / 1e9;
        r.peakHeapBytes = peakHeap();
        if (slowest != null) {
            save(saveDir, "slowest", slowest);
        }
        return r;
    }

    /** The heap pools' peak occupancy since the run began, garbage not yet collected included. */
    private static long peakHeap() {
        long peak = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP) {
                peak += p.getPeakUsage().getUsed();
            }
        }
        return peak;
    }

    private static java.util.concurrent.ThreadFactory daemon() {
        return run -> {
            Thread t = new Thread(run, "fuzz-target");
            t.setDaemon(true);
            return t;
        };
    }

    private static void save(File dir, String name, byte[] input) throws IOException {
        if (dir != null) {
            Files.createDirectories(dir.toPath());
            Files.write(new File(dir, name + ".bin").toPath(), input);
        }
    }

    private String unexpected(Report r, Throwable t, long i, byte[] input, File saveDir) throws IOException {
        String key = t.getClass().getSimpleName();
        if (t instanceof BadMessage) {
            key = "BadMessage";
        }
        if (r.unexpected.merge(key, 1L, Long::sum) == 1L) {
            StackTraceElement[] st = t.getStackTrace();
            String where = st.length > 0 ? st[0].toString() : "?";
            String msg = String.valueOf(t.getMessage());
            r.examples.put(key, "#" + i + " " + msg.substring(0, Math.min(160, msg.length())).replace('\n', ' ') + " at " + where);
            save(saveDir, "unexpected-" + key + "-" + i, input);
        }
        return "UNEXPECTED " + key;
    }

    /** A checked error whose message is not one line naming the file. */
    static final class BadMessage extends RuntimeException {
        private static final long serialVersionUID = 1L;

        BadMessage(String m) {
            super(m);
        }
    }

    private String runOne(byte[] input) throws Exception {
        String name = target == Target.VQM ? VQM_NAME : TFLITE_NAME;
        try {
            return target == Target.VQM ? vqm(input) : tflite(input);
        } catch (IOException e) {
            String m = String.valueOf(e.getMessage());
            if (!m.startsWith(name) || m.indexOf('\n') >= 0 || m.indexOf('\r') >= 0) {
                throw new BadMessage(e.getClass().getSimpleName() + ": " + m);
            }
            return e instanceof VqmException ? "VqmException/" + ((VqmException) e).kind() : e.getClass().getSimpleName();
        }
    }

    private String vqm(byte[] input) throws IOException {
        VqmFile f = VqmReader.parse(ByteBuffer.wrap(input), VQM_NAME, limits);
        float[] out = new float[4096];
        double[] acc = new double[4096];
        for (VqmTensor t : f.tensors) {
            if (t.method == 0) {
                int dt = t.sections.get("raw").dtype;
                if (dt != 0 && dt != 1) {
                    t.rawBytes();
                    continue;
                }
            }
            long numel = t.numel();
            long todo = Math.min(numel, DECODE_ELEMENTS);
            for (long at = 0; at < todo; at += out.length) {
                t.decodeRange(false, at, out, 0, (int) Math.min(out.length, todo - at), acc);
            }
            if (numel > todo) { // and the tail, where the largest indices and offsets are
                int len = (int) Math.min(out.length, numel);
                t.decodeRange(false, numel - len, out, 0, len, acc);
            }
            if (t.method != 0 && t.shape.length == 2) {
                t.decodeRange(true, numel - 1, out, 0, 1, acc);
            } else if (t.method != 0) { // an N-D weight: its last element with the axes reversed
                int[] axes = new int[t.shape.length];
                for (int i = 0; i < axes.length; i++) {
                    axes[i] = axes.length - 1 - i;
                }
                t.decodePermuted(axes, numel - 1, out, 0, 1, acc);
            }
        }
        return "ok";
    }

    private String tflite(byte[] input) throws IOException {
        ByteBuffer out = TfliteExternal.expand(ByteBuffer.wrap(input), TFLITE_NAME, limits, cacheDir);
        if (out == null) {
            return "ok (not decode=load)";
        }
        if (out.capacity() < input.length) {
            throw new IllegalStateException("expanded buffer smaller than the file");
        }
        out.get(out.capacity() - 1);
        return "ok (expanded)";
    }
}
