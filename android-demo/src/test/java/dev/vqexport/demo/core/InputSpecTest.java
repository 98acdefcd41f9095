package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

class InputSpecTest {
    @Test
    void readsTheSpecItselfOrNestedUnderInput() {
        String spec = "{\"shape\": [1, 1, 28, 28], \"layout\": \"NCHW\", \"mean\": [0.5], \"std\": [0.25]}";
        InputSpec a = InputSpec.fromJsonText(spec);
        InputSpec b = InputSpec.fromJsonText("{\"labels\": null, \"input\": " + spec + "}");
        for (InputSpec s : new InputSpec[] {a, b}) {
            assertEquals("NCHW", s.layout);
            assertArrayEquals(new int[] {1, 1, 28, 28}, s.shape);
            assertArrayEquals(new float[] {0.5f}, s.mean);
            assertEquals("metadata", s.source);
            assertNull(s.warning);
        }
        assertNull(InputSpec.fromJsonText("{\"labels\": null}"));
        assertNull(InputSpec.fromJsonText(null));
        assertThrows(IllegalArgumentException.class,
                () -> InputSpec.fromJsonText("{\"shape\": [1], \"layout\": \"CHWN\"}"));
    }

    @Test
    void onnxPropsPreferTheVqexportKey() {
        InputSpec s = InputSpec.fromOnnxProps(Map.of(
                "vqexport", "{\"input\": {\"shape\": [1, 28, 28, 1], \"layout\": \"NHWC\", \"mean\": [0], \"std\": [1]}}",
                "input", "{\"shape\": [1, 1, 28, 28], \"layout\": \"NCHW\"}"));
        assertEquals("NHWC", s.layout);
        assertEquals("NCHW", InputSpec.fromOnnxProps(Map.of("input", "{\"shape\": [1, 1, 28, 28]}")).layout);
    }

    @Test
    void defaultsWarn() {
        InputSpec t = InputSpec.defaults("tflite", "m.tflite");
        assertEquals("NHWC", t.layout);
        assertEquals("default", t.source);
        assertNotNull(t.warning);
        assertEquals("NCHW", InputSpec.defaults("onnx", "m.onnx").layout);
    }

    @Test
    void fillsNormalisedPixelsInEitherLayout() throws Exception {
        EvalSet set = EvalSet.parse(EvalSetTest.make(1, 2, 1, 2), "t"); // pixels 0,1 (c0) 2,3 (c1)
        float[] mean = {0f, 1f / 255f};
        float[] std = {1f / 255f, 2f / 255f};
        float[] out = new float[4];
        new InputSpec("NCHW", new int[] {1, 2, 1, 2}, mean, std, "metadata", null).fill(set, 0, out);
        // (p/255 - mean)/std: c0 -> p, c1 -> (p - 1)/2. Tolerance: float division rounding only.
        assertArrayEquals(new float[] {0, 1, 0.5f, 1}, out, 1e-5f);
        new InputSpec("NHWC", new int[] {1, 1, 2, 2}, mean, std, "metadata", null).fill(set, 0, out);
        assertArrayEquals(new float[] {0, 0.5f, 1, 1}, out, 1e-5f);
        assertThrows(IllegalArgumentException.class,
                () -> InputSpec.defaults("onnx", "m").fill(set, 0, new float[3]));
    }

    @Test
    void readsTfliteMetadataLikePython() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] model = Vectors.read((String) part.get("model"));
        byte[] raw = TfliteMetadata.find(model, "vqexport");
        assertNotNull(raw, "the exported .tflite has a vqexport metadata buffer");
        assertEquals(part.get("metadata_json"), new String(raw, "UTF-8"));
        InputSpec s = InputSpec.fromTflite(model);
        Map<String, Object> want = Json.parseObject((String) part.get("metadata_json"));
        Map<?, ?> in = (Map<?, ?>) want.get("input");
        assertEquals(in.get("layout"), s.layout);
        assertNull(TfliteMetadata.find(model, "no-such-name"));
        assertThrows(IllegalArgumentException.class, () -> TfliteMetadata.find(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}, "x"));
    }

    @Test
    void mismatchComparesTheModelShapeWithTheImagesInTheLayout() throws Exception {
        EvalSet set = EvalSet.parse(EvalSetTest.make(2, 1, 28, 28), "t");
        InputSpec nchw = new InputSpec("NCHW", null, new float[] {0}, new float[] {1}, "metadata", null);
        InputSpec nhwc = new InputSpec("NHWC", null, new float[] {0}, new float[] {1}, "metadata", null);
        assertNull(nchw.mismatch(new int[] {1, 1, 28, 28}, set));
        assertNull(nchw.mismatch(new int[] {-1, 1, 28, 28}, set), "a dynamic batch takes one image");
        assertNull(nhwc.mismatch(new int[] {1, 28, 28, 1}, set));
        assertNull(nchw.mismatch(new int[] {1, 784}, set), "a flattening model");
        // larger, smaller, other layout, batched, 3-d
        for (int[] bad : new int[][] {{1, 1, 32, 32}, {1, 1, 14, 14}, {1, 28, 28, 1}, {8, 1, 28, 28}, {1, 28, 28}, {1, 783}}) {
            String why = nchw.mismatch(bad, set);
            assertNotNull(why, java.util.Arrays.toString(bad));
            assertTrue(why.contains("input shape"), why);
        }
        assertNotNull(nhwc.mismatch(new int[] {1, 1, 28, 28}, set));
    }
}
