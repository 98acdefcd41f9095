package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BenchTest {
    /** A fake model: logits one-hot at (first pixel value * 255 rounded) % 10, and a run counter. */
    static class Fake implements ModelRunner {
        int runs;
        boolean closed;
        float[] current;
        int[] shape = {1, 1, 2, 2};

        @Override
        public String backend() {
            return "fake";
        }

        @Override
        public int[] inputShape() {
            return shape.clone();
        }

        @Override
        public InputSpec inputSpec() {
            return new InputSpec("NCHW", new int[] {1, 1, 2, 2}, new float[] {0}, new float[] {1}, "metadata", null);
        }

        @Override
        public void setInput(float[] input) {
            current = input.clone();
        }

        @Override
        public void invoke() {
            runs++;
        }

        @Override
        public float[] output() {
            float[] out = new float[10];
            out[Math.round(current[0] * 255) % 10] = 1;
            return out;
        }

        @Override
        public long lastNativeNanos() {
            return 1000; // 0.001 ms
        }

        @Override
        public Map<String, Object> runtimeInfo() {
            return new LinkedHashMap<>(Map.of("threads", 1));
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    @Test
    void measuresLatencyAccuracyAndMemory() throws Exception {
        // EvalSetTest.make: image i's first pixel is i*10, label i % 10; the fake predicts
        // (i*10) % 10 = 0, so exactly the images with label 0 (i = 0, 10) are right.
        EvalSet set = EvalSet.parse(EvalSetTest.make(20, 1, 2, 2), "t");
        Bench.Settings s = new Bench.Settings();
        s.warmup = 3;
        s.minRuns = 50;
        s.minMillis = 20;
        Fake fake = new Fake();
        Map<String, Object> r = new LinkedHashMap<>();
        new Bench(s, new MemoryProbe()).runModel(() -> fake, set, r);
        Map<?, ?> lat = (Map<?, ?>) r.get("latency_ms");
        int timed = ((Number) lat.get("runs")).intValue();
        assertTrue(timed >= 50, "at least minRuns timed runs: " + timed);
        assertTrue(((Number) lat.get("total_ms")).doubleValue() >= 20, "at least minMillis");
        assertEquals(1 + 3 + timed + 20, fake.runs, "first run + warm-up + timed + eval");
        Map<?, ?> acc = (Map<?, ?>) r.get("accuracy");
        assertEquals(2, acc.get("correct"));
        assertEquals(0.1, (Double) acc.get("top1"), 1e-12);
        assertTrue(fake.closed);
        Map<?, ?> mem = (Map<?, ?>) r.get("memory");
        assertTrue(((Map<?, ?>) mem.get("before")).containsKey("vm_hwm_kb"));
        assertTrue(((Map<?, ?>) mem.get("delta")).containsKey("java_heap_kb"));
        for (String k : List.of("load_ms", "first_run_ms", "init_ms", "input", "backend", "runtime")) {
            assertTrue(r.containsKey(k), k);
        }
        // benchmark_model's phases, each on its own
        Map<?, ?> warm = (Map<?, ?>) r.get("warmup_ms");
        assertEquals(3, warm.get("runs"));
        for (String k : List.of("min", "max", "mean", "std", "p50", "p90", "p95", "p99")) {
            assertTrue(lat.containsKey(k), k);
        }
        Map<?, ?> nat = (Map<?, ?>) r.get("native_latency_ms");
        assertEquals(timed, nat.get("runs"), "one native time per timed run");
        assertEquals(0.001, ((Number) nat.get("p50")).doubleValue(), 1e-12);
        assertEquals(0.001, ((Number) r.get("first_run_native_ms")).doubleValue(), 1e-12);
        assertTrue(((Map<?, ?>) mem.get("peak_load")).containsKey("vm_rss_kb"), "peak sampled during load");
        assertTrue(((Map<?, ?>) mem.get("after_load")).containsKey("vm_hwm_kb"));
        int runSamples = ((Number) ((Map<?, ?>) mem.get("peak_run")).get("samples")).intValue();
        assertEquals(2 + timed / Bench.RUN_SAMPLE_EVERY + (20 + Bench.RUN_SAMPLE_EVERY - 1) / Bench.RUN_SAMPLE_EVERY,
                runSamples, "start, every 16th timed run and eval image, end");
    }

    @Test
    void aShapeThatDoesNotMatchTheImagesIsAnErrorBeforeAnyRun() throws Exception {
        EvalSet set = EvalSet.parse(EvalSetTest.make(20, 1, 2, 2), "t");
        for (int[] shape : new int[][] {{1, 1, 3, 3}, {1, 1, 1, 2}, {2, 1, 2, 2}, {1, 5}}) {
            Fake fake = new Fake();
            fake.shape = shape;
            Map<String, Object> r = new LinkedHashMap<>();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new Bench(new Bench.Settings(), new MemoryProbe()).runModel(() -> fake, set, r));
            assertTrue(e.getMessage().contains("1x2x2"), e.getMessage());
            assertEquals(0, fake.runs, "nothing ran on a mismatched input");
            assertTrue(fake.closed);
            assertTrue(((Map<?, ?>) r.get("memory")).containsKey("after"), "the memory is still reported");
        }
    }

    @Test
    void aFailedLoadStillReportsMemory() {
        EvalSet set;
        try {
            set = EvalSet.parse(EvalSetTest.make(2, 1, 2, 2), "t");
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
        Map<String, Object> r = new LinkedHashMap<>();
        assertThrows(OutOfMemoryError.class, () -> new Bench(new Bench.Settings(), new MemoryProbe())
                .runModel(() -> { throw new OutOfMemoryError("fake"); }, set, r));
        Map<?, ?> mem = (Map<?, ?>) r.get("memory");
        assertTrue(mem.containsKey("peak_load") && mem.containsKey("after"), String.valueOf(mem));
    }

    @Test
    void rejectsSettingsOutOfRange() {
        for (String field : List.of("minRuns", "warmup", "minMillis", "threads", "maxEval")) {
            Bench.Settings s = new Bench.Settings();
            switch (field) {
                case "minRuns" -> s.minRuns = 0;
                case "warmup" -> s.warmup = -1;
                case "minMillis" -> s.minMillis = -1;
                case "threads" -> s.threads = 0;
                default -> s.maxEval = -1;
            }
            assertThrows(IllegalArgumentException.class, () -> new Bench(s, new MemoryProbe()), field);
        }
    }

    @Test
    void decodesAVqmFile() throws Exception {
        Map<String, Object> c = Vectors.list("vqm").get(0);
        File f = Vectors.dir().resolve((String) c.get("file")).toFile();
        Map<String, Object> r = new LinkedHashMap<>();
        new Bench(new Bench.Settings(), new MemoryProbe()).runVqm(f, r);
        Map<?, ?> info = (Map<?, ?>) r.get("vqm");
        assertEquals(((List<?>) c.get("tensors")).size(), info.get("tensors"));
        assertTrue(((Number) r.get("decode_ms")).doubleValue() >= 0);
        Map<?, ?> mem = (Map<?, ?>) r.get("memory");
        assertTrue(mem.containsKey("after_load") && mem.containsKey("peak_load") && mem.containsKey("delta_load"),
                String.valueOf(mem.keySet()));
    }

    @Test
    void vqmMemoryAfterLoadCountsTheDecodedTensors(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws Exception {
        // k-means, k=2, 1 bit per index: 256 KiB on disk, 8 MiB of float32 once decoded.
        int rows = 1024;
        int cols = 2048;
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = new TinyVqm.Rec("big.weight", 2, new int[] {rows, cols});
        r.k = 2;
        r.bits = 1;
        r.secs.add(new TinyVqm.Sec(1, 0, new int[] {2}, TinyVqm.f32(-1f, 1f)));
        byte[] idx = new byte[rows * cols / 8];
        java.util.Arrays.fill(idx, (byte) 0x5A);
        r.secs.add(new TinyVqm.Sec(2, 5, new int[] {rows * cols}, idx));
        v.recs.add(r);
        File f = dir.resolve("big.vqm").toFile();
        java.nio.file.Files.write(f.toPath(), v.build());
        System.gc();
        Map<String, Object> res = new LinkedHashMap<>();
        new Bench(new Bench.Settings(), new MemoryProbe()).runVqm(f, res);
        Map<?, ?> mem = (Map<?, ?>) res.get("memory");
        long before = ((Number) ((Map<?, ?>) mem.get("before")).get("java_heap_kb")).longValue();
        long loaded = ((Number) ((Map<?, ?>) mem.get("after_load")).get("java_heap_kb")).longValue();
        long peak = ((Number) ((Map<?, ?>) mem.get("peak_load")).get("java_heap_kb")).longValue();
        assertTrue(loaded - before >= 8192 * 9 / 10, "after_load holds the 8 MiB decoded: +" + (loaded - before) + " kB");
        assertTrue(peak - before >= 8192 * 9 / 10, "the load peak sees them too: +" + (peak - before) + " kB");
        assertEquals((long) rows * cols, ((Map<?, ?>) res.get("vqm")).get("decoded_elements"));
    }

    @Test
    void knowsFormatsByExtension() {
        assertEquals("tflite", Bench.format("a.TFLITE"));
        assertEquals("onnx", Bench.format("b.onnx"));
        assertEquals("vqm", Bench.format("c.vqm"));
        assertEquals(null, Bench.format("results.json"));
        assertEquals(3, Bench.argmax(new float[] {0, 1, 1, 2, -5}));
    }
}
