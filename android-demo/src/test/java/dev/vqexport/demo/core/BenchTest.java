package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class BenchTest {
    /** A fake model: logits one-hot at (first pixel value * 255 rounded) % 10, and a run counter. */
    static final class Fake implements ModelRunner {
        int runs;
        boolean closed;

        @Override
        public String backend() {
            return "fake";
        }

        @Override
        public int[] inputShape() {
            return new int[] {1, 1, 2, 2};
        }

        @Override
        public InputSpec inputSpec() {
            return new InputSpec("NCHW", inputShape(), new float[] {0}, new float[] {1}, "metadata", null);
        }

        @Override
        public float[] run(float[] input) {
            runs++;
            float[] out = new float[10];
            out[Math.round(input[0] * 255) % 10] = 1;
            return out;
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
        for (String k : List.of("load_ms", "first_run_ms", "init_ms", "input", "backend")) {
            assertTrue(r.containsKey(k), k);
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
