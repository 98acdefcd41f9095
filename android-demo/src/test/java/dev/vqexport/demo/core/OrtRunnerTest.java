package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The app's ONNX path (OrtRunner) on the desktop ONNX Runtime against Python onnxruntime. */
class OrtRunnerTest {
    static float[] floats(byte[] le) {
        float[] out = new float[le.length / 4];
        ByteBuffer.wrap(le).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    @Test
    void logitsMatchPythonOnnxruntime() throws Exception {
        Map<String, Object> part = Vectors.part("onnx");
        int count = ((Number) part.get("count")).intValue();
        int outputs = ((Number) part.get("outputs")).intValue();
        float[] x = floats(Vectors.read((String) part.get("inputs")));
        float[] want = floats(Vectors.read((String) part.get("logits")));
        String model = Vectors.dir().resolve((String) part.get("model")).toString();
        try (OrtRunner r = new OrtRunner(model, 1)) {
            assertArrayEquals(new int[] {-1, 1, 28, 28}, r.inputShape(), "the exported batch is dynamic");
            assertEquals("NCHW", r.inputSpec().layout);
            assertEquals("metadata", r.inputSpec().source);
            assertNull(r.inputSpec().warning);
            assertEquals(-1, r.lastNativeNanos(), "ORT reports no per-run time");
            assertEquals(1, r.runtimeInfo().get("threads"));
            int size = 28 * 28;
            for (int i = 0; i < count; i++) {
                float[] in = java.util.Arrays.copyOfRange(x, i * size, (i + 1) * size);
                r.setInput(in);
                r.invoke();
                float[] got = r.output();
                float[] exp = java.util.Arrays.copyOfRange(want, i * outputs, (i + 1) * outputs);
                // Same ORT version and CPU kernels, but the Python session may run more threads
                // (different reduction split) than this 1-thread one: allow float32 rounding noise.
                assertArrayEquals(exp, got, 1e-4f, "logits of input " + i);
            }
        }
    }
}
