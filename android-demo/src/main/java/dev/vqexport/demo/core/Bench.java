package dev.vqexport.demo.core;

import java.io.File;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The measurements, free of Android: load + first run, latency, top-1 accuracy, memory before and
 * after, and for .vqm files the decode. The app's BenchRunner calls these on a worker thread.
 */
public final class Bench {
    /** Opens a model; the time it takes counts as load time. */
    public interface Loader {
        ModelRunner load() throws Exception;
    }

    public static final class Settings {
        public int warmup = 10;
        public int minRuns = 50;
        public long minMillis = 1000;
        /** At most this many eval images (0 = all). */
        public int maxEval = 0;
        public int threads = 1;

        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<String, Object>();
            m.put("warmup", warmup);
            m.put("min_runs", minRuns);
            m.put("min_ms", minMillis);
            m.put("max_eval", maxEval);
            m.put("threads", threads);
            return m;
        }
    }

    private final Settings settings;
    private final MemoryProbe memory;

    public Bench(Settings settings, MemoryProbe memory) {
        if (settings.minRuns < 1 || settings.warmup < 0 || settings.minMillis < 0) {
            throw new IllegalArgumentException("runs must be >= 1, warm-up and time >= 0");
        }
        this.settings = settings;
        this.memory = memory;
    }

    /** The format of a model file from its name: tflite, onnx or vqm; null for anything else. */
    public static String format(String fileName) {
        String n = fileName.toLowerCase(java.util.Locale.ROOT);
        if (n.endsWith(".tflite")) {
            return "tflite";
        }
        if (n.endsWith(".onnx")) {
            return "onnx";
        }
        if (n.endsWith(".vqm")) {
            return "vqm";
        }
        return null;
    }

    private static double ms(long nanos) {
        return nanos / 1e6;
    }

    /** Index of the largest logit (the first on ties). */
    public static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Runs one inference model: fills {@code r} with load, latency, accuracy and memory. */
    public void runModel(Loader loader, EvalSet eval, Map<String, Object> r) throws Exception {
        Map<String, Object> before = memory.snapshot();
        long t0 = System.nanoTime();
        ModelRunner m = loader.load();
        try {
            long t1 = System.nanoTime();
            InputSpec spec = m.inputSpec();
            if (spec.warning != null) {
                r.put("warning", spec.warning);
            }
            r.put("backend", m.backend());
            r.put("input", spec.toJson());
            r.put("model_input_shape", m.inputShape());
            float[] in = new float[eval.imageSize()];
            spec.fill(eval, 0, in);
            long t2 = System.nanoTime();
            float[] first = m.run(in);
            long t3 = System.nanoTime();
            r.put("load_ms", ms(t1 - t0));
            r.put("first_run_ms", ms(t3 - t2));
            r.put("init_ms", ms(t1 - t0 + t3 - t2));
            r.put("outputs", first.length);

            for (int i = 0; i < settings.warmup; i++) {
                m.run(in);
            }
            double[] samples = new double[Math.max(settings.minRuns, 16)];
            int n = 0;
            long start = System.nanoTime();
            long minNanos = settings.minMillis * 1000000L;
            while (n < settings.minRuns || System.nanoTime() - start < minNanos) {
                spec.fill(eval, n % eval.count, in); // outside the timed span
                long a = System.nanoTime();
                m.run(in);
                long b = System.nanoTime();
                if (n == samples.length) {
                    samples = java.util.Arrays.copyOf(samples, samples.length * 2);
                }
                samples[n++] = ms(b - a);
            }
            Map<String, Object> lat = new Stats(java.util.Arrays.copyOf(samples, n)).toJson();
            lat.put("total_ms", ms(System.nanoTime() - start));
            r.put("latency_ms", lat);

            int count = settings.maxEval > 0 ? Math.min(settings.maxEval, eval.count) : eval.count;
            int correct = 0;
            for (int i = 0; i < count; i++) {
                spec.fill(eval, i, in);
                if (argmax(m.run(in)) == eval.label(i)) {
                    correct++;
                }
            }
            Map<String, Object> acc = new LinkedHashMap<String, Object>();
            acc.put("top1", count == 0 ? Double.NaN : (double) correct / count);
            acc.put("correct", correct);
            acc.put("count", count);
            r.put("accuracy", acc);
            Map<String, Object> after = memory.snapshot();
            r.put("memory", memoryJson(before, after));
        } finally {
            m.close();
        }
    }

    /** Reads and decodes every tensor of a .vqm file; fills {@code r} with times and sizes. */
    public void runVqm(File file, Map<String, Object> r) throws Exception {
        Map<String, Object> before = memory.snapshot();
        long t0 = System.nanoTime();
        VqmFile v = VqmReader.read(file);
        long t1 = System.nanoTime();
        long elements = v.decodeAll();
        long t2 = System.nanoTime();
        Map<String, Object> after = memory.snapshot();
        r.put("backend", "vqm-java");
        r.put("load_ms", ms(t1 - t0));
        r.put("decode_ms", ms(t2 - t1));
        r.put("init_ms", ms(t2 - t0));
        Map<String, Object> info = new LinkedHashMap<String, Object>();
        int compressed = 0;
        Map<String, Object> methods = new LinkedHashMap<String, Object>();
        for (VqmTensor t : v.tensors) {
            if (t.method != 0) {
                compressed++;
            }
            Object c = methods.get(t.methodName());
            methods.put(t.methodName(), c == null ? 1 : ((Integer) c) + 1);
        }
        info.put("version", "1." + v.versionMinor);
        info.put("tensors", v.tensors.size());
        info.put("compressed_tensors", compressed);
        info.put("methods", methods);
        info.put("decoded_elements", elements);
        info.put("decoded_bytes_f32", elements * 4);
        info.put("producer", v.metadata.get("producer"));
        r.put("vqm", info);
        InputSpec spec = InputSpec.fromJson(v.input());
        if (spec != null) {
            r.put("input", spec.toJson());
        }
        r.put("memory", memoryJson(before, after));
    }

    private static Map<String, Object> memoryJson(Map<String, Object> before, Map<String, Object> after) {
        Map<String, Object> mem = new LinkedHashMap<String, Object>();
        mem.put("before", before);
        mem.put("after", after);
        mem.put("delta", MemoryProbe.delta(before, after));
        return mem;
    }
}
