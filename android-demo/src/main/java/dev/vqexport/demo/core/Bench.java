package dev.vqexport.demo.core;

import java.io.File;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The measurements, free of Android, in benchmark_model's phases: init (load), first run,
 * warm-up, steady state; then top-1 accuracy. Memory: snapshots before, after the load and at the
 * end, and the peak sampled during load and first run. For .vqm files: read and decode. The app's
 * BenchRunner calls these on a worker thread.
 */
public final class Bench {
    /** At most this many timed runs, whatever min_ms asks: bounds the sample array. */
    public static final int MAX_TIMED_RUNS = 1000000;
    /** How often the peak sampler reads /proc/self/status during load. */
    public static final long PEAK_PERIOD_MS = 5;
    /** After warm-up, memory is read every this many runs, between them. */
    public static final int RUN_SAMPLE_EVERY = 16;

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
        if (settings.minRuns < 1 || settings.warmup < 0 || settings.minMillis < 0 || settings.threads < 1
                || settings.maxEval < 0) {
            throw new IllegalArgumentException("runs and threads must be >= 1; warm-up, time and max_eval >= 0");
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

    /** A growing array of durations in ms. */
    private static final class Samples {
        double[] v = new double[64];
        int n;

        void add(double x) {
            if (n == v.length) {
                v = Arrays.copyOf(v, v.length * 2);
            }
            v[n++] = x;
        }

        Map<String, Object> json() {
            return n == 0 ? null : new Stats(Arrays.copyOf(v, n)).toJson();
        }
    }

    /**
     * Runs one inference model: fills {@code r} with times, latency, accuracy and memory. On a
     * failure {@code r} keeps what was measured so far, including the memory, and the exception
     * goes to the caller (it becomes the row's error).
     */
    public void runModel(Loader loader, EvalSet eval, Map<String, Object> r) throws Exception {
        Map<String, Object> mem = new LinkedHashMap<String, Object>();
        r.put("memory", mem);
        Map<String, Object> before = memory.snapshot();
        mem.put("before", before);
        PeakSampler peak = new PeakSampler(memory, PEAK_PERIOD_MS).start();
        ModelRunner m = null;
        try {
            long t0 = System.nanoTime();
            m = loader.load();
            long t1 = System.nanoTime();
            r.put("load_ms", ms(t1 - t0));
            r.put("backend", m.backend());
            r.put("runtime", m.runtimeInfo());
            InputSpec spec = m.inputSpec();
            if (spec.warning != null) {
                r.put("warning", spec.warning);
            }
            r.put("input", spec.toJson());
            int[] shape = m.inputShape();
            r.put("model_input_shape", shape);
            String mismatch = spec.mismatch(shape, eval);
            if (mismatch != null) {
                throw new IllegalArgumentException(mismatch);
            }
            float[] in = new float[eval.imageSize()];
            spec.fill(eval, 0, in);
            m.setInput(in);
            long t2 = System.nanoTime();
            m.invoke();
            long t3 = System.nanoTime();
            float[] first = m.output();
            mem.put("peak_load", peak.stop()); // before warm-up: the sampler would perturb the timing
            mem.put("after_load", memory.snapshot());
            r.put("first_run_ms", ms(t3 - t2));
            putNative(r, "first_run_native_ms", m.lastNativeNanos());
            r.put("init_ms", ms(t1 - t0 + t3 - t2));
            r.put("outputs", first.length);

            // Between runs, never inside a timed span: a reading every RUN_SAMPLE_EVERY runs.
            PeakSampler runPeak = new PeakSampler(memory, 1);
            runPeak.sampleNow();
            Samples warm = new Samples();
            for (int i = 0; i < settings.warmup; i++) {
                long a = System.nanoTime();
                m.invoke();
                warm.add(ms(System.nanoTime() - a));
            }
            r.put("warmup_ms", warm.json());

            Samples wall = new Samples();
            Samples nat = new Samples();
            long start = System.nanoTime();
            long minNanos = settings.minMillis * 1000000L;
            int n = 0;
            while ((n < settings.minRuns || System.nanoTime() - start < minNanos) && n < MAX_TIMED_RUNS) {
                spec.fill(eval, n % eval.count, in); // input copies stay outside the timed span
                m.setInput(in);
                long a = System.nanoTime();
                m.invoke();
                long b = System.nanoTime();
                wall.add(ms(b - a));
                long nn = m.lastNativeNanos();
                if (nn >= 0) {
                    nat.add(ms(nn));
                }
                if (++n % RUN_SAMPLE_EVERY == 0) {
                    runPeak.sampleNow();
                }
            }
            Map<String, Object> lat = wall.json();
            lat.put("total_ms", ms(System.nanoTime() - start));
            r.put("latency_ms", lat);
            r.put("native_latency_ms", nat.json());

            int count = settings.maxEval > 0 ? Math.min(settings.maxEval, eval.count) : eval.count;
            int correct = 0;
            for (int i = 0; i < count; i++) {
                spec.fill(eval, i, in);
                m.setInput(in);
                m.invoke();
                if (argmax(m.output()) == eval.label(i)) {
                    correct++;
                }
                if (i % RUN_SAMPLE_EVERY == 0) {
                    runPeak.sampleNow();
                }
            }
            Map<String, Object> pr = runPeak.stop();
            pr.remove("period_ms");
            mem.put("peak_run", pr);
            Map<String, Object> acc = new LinkedHashMap<String, Object>();
            acc.put("top1", count == 0 ? null : (Object) ((double) correct / count));
            acc.put("correct", correct);
            acc.put("count", count);
            r.put("accuracy", acc);
        } finally {
            if (!mem.containsKey("peak_load")) {
                mem.put("peak_load", peak.stop());
            }
            Map<String, Object> after = memory.snapshot();
            mem.put("after", after);
            mem.put("delta", MemoryProbe.delta(before, after));
            if (mem.get("after_load") instanceof Map) {
                @SuppressWarnings("unchecked")
                Map<String, Object> loaded = (Map<String, Object>) mem.get("after_load");
                mem.put("delta_load", MemoryProbe.delta(before, loaded));
            }
            if (m != null) {
                m.close();
            }
        }
    }

    private static void putNative(Map<String, Object> r, String key, long nanos) {
        r.put(key, nanos >= 0 ? (Object) ms(nanos) : null);
    }

    /**
     * Reads and decodes every tensor of a .vqm file, as an app that ships .vqm weights would at
     * start-up; fills {@code r} with times, sizes and memory. The decoded tensors stay referenced
     * until the "after_load" snapshot, so it counts them.
     */
    public void runVqm(File file, Map<String, Object> r) throws Exception {
        Map<String, Object> mem = new LinkedHashMap<String, Object>();
        r.put("memory", mem);
        Map<String, Object> before = memory.snapshot();
        mem.put("before", before);
        PeakSampler peak = new PeakSampler(memory, PEAK_PERIOD_MS).start();
        List<Object> decoded = new ArrayList<Object>();
        try {
            long t0 = System.nanoTime();
            VqmFile v = VqmReader.read(file);
            long t1 = System.nanoTime();
            long elements = 0;
            for (VqmTensor t : v.tensors) {
                if (t.method == 0) {
                    byte[] raw = t.rawBytes();
                    decoded.add(raw);
                    elements += raw.length / Math.max(1, VqmTensor.ITEMSIZE[t.sections.get("raw").dtype]);
                } else {
                    float[] f = t.decode();
                    decoded.add(f);
                    elements += f.length;
                }
            }
            long t2 = System.nanoTime();
            mem.put("peak_load", peak.stop());
            mem.put("after_load", memory.snapshot());
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
            info.put("version", v.versionMajor + "." + v.versionMinor);
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
        } finally {
            if (!mem.containsKey("peak_load")) {
                mem.put("peak_load", peak.stop());
            }
            decoded.clear();
            Map<String, Object> after = memory.snapshot();
            mem.put("after", after);
            mem.put("delta", MemoryProbe.delta(before, after));
            if (mem.get("after_load") instanceof Map) {
                @SuppressWarnings("unchecked")
                Map<String, Object> loaded = (Map<String, Object>) mem.get("after_load");
                mem.put("delta_load", MemoryProbe.delta(before, loaded));
            }
        }
    }
}
