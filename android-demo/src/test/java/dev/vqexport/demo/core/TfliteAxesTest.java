package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * decode="load" slots whose layout permutes an N-D weight ("axes:0,2,3,1": a conv's OIHW filter
 * stored OHWI), against Python (vqexport/formats/tflite/external.py) on the same files.
 */
class TfliteAxesTest {

    private static byte[] expand(byte[] file, String name) throws IOException {
        ByteBuffer got = TfliteExternal.expand(ByteBuffer.wrap(file), name);
        byte[] bytes = new byte[got.capacity()];
        got.duplicate().get(bytes);
        return bytes;
    }

    @Test
    @SuppressWarnings("unchecked")
    void expandsAConvNetLikePython() throws Exception {
        Map<String, Object> part = Vectors.part("tflite_conv_load");
        assertTrue(((List<String>) part.get("layouts")).contains("axes:0,2,3,1"), "the file has an OHWI slot: " + part);
        // kmeans is a pure gather of float32 codewords: every byte of the expansion is Python's.
        assertArrayEquals(Vectors.read((String) part.get("expanded")),
                expand(Vectors.read((String) part.get("model")), "conv-load.tflite"));
        // A layout Python's int() reads with its spaces ("axes: 0 , 2 , 3 , 1"): accepted alike.
        assertArrayEquals(Vectors.read((String) part.get("spaced_expanded")),
                expand(Vectors.read((String) part.get("spaced")), "conv-load-spaced.tflite"));
    }

    @TestFactory
    @SuppressWarnings("unchecked")
    List<DynamicTest> rejectsSlotsPythonRejects() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Map<String, Object> c : (List<Map<String, Object>>) Vectors.part("tflite_conv_load").get("rejected")) {
            String name = (String) c.get("name");
            tests.add(DynamicTest.dynamicTest(name, () -> {
                byte[] bad = Vectors.read((String) c.get("file"));
                IOException e = assertThrows(IOException.class, () -> TfliteExternal.expand(ByteBuffer.wrap(bad), "bad.tflite"),
                        name + " must be rejected (Python: " + c.get("python") + ")");
                assertTrue(e.getMessage().startsWith("bad.tflite: layer "), e.getMessage());
                assertTrue(e.getMessage().contains("does not fit its weight"), e.getMessage() + " / Python: " + c.get("python"));
                assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
            }));
        }
        assertTrue(tests.size() >= 5, "tampered decode='load' files: " + tests.size());
        return tests;
    }

    @Test
    @SuppressWarnings("unchecked")
    void slotAxesAgreesWithPython() throws Exception {
        List<List<Object>> cases = (List<List<Object>>) Vectors.manifest().get("slot_axes");
        assertTrue(cases != null && cases.size() > 50, "slot_axes cases in the manifest");
        int accepted = 0;
        for (List<Object> c : cases) {
            String layout = (String) c.get(0);
            int ndim = ((Number) c.get(1)).intValue();
            int[] got = TfliteExternal.slotAxes(layout, ndim);
            String what = "slot_axes('" + layout + "', " + ndim + ")";
            if (c.get(2) == null) {
                assertNull(got, what + " is None in Python");
            } else {
                List<Object> want = (List<Object>) c.get(2);
                int[] w = new int[want.size()];
                for (int i = 0; i < w.length; i++) {
                    w[i] = ((Number) want.get(i)).intValue();
                }
                assertArrayEquals(w, got, what);
                accepted++;
            }
        }
        assertTrue(accepted >= 10 && accepted < cases.size(), "both outcomes covered: " + accepted + " accepted");
    }

    @Test
    void readsIntegersAsPythonsInt() {
        assertEquals(12, TfliteExternal.pyInt(" +1_2 "));
        assertEquals(0, TfliteExternal.pyInt("-0"));
        assertEquals(-1, TfliteExternal.pyInt("-1"));
        assertEquals(-1, TfliteExternal.pyInt("1__2"));
        assertEquals(-1, TfliteExternal.pyInt(""));
        assertEquals(-1, TfliteExternal.pyInt("+"));
    }
}
