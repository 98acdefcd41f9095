package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** The Java reader against files and decodes from the Python writer and reader. */
class VqmVectorsTest {

    @TestFactory
    List<DynamicTest> decodesLikePython() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Map<String, Object> c : Vectors.list("vqm")) {
            String name = (String) c.get("name");
            tests.add(DynamicTest.dynamicTest(name, () -> checkCase(c)));
        }
        assertTrue(tests.size() >= 10, "expected a .vqm file per method and width, got " + tests.size());
        return tests;
    }

    @SuppressWarnings("unchecked")
    private static void checkCase(Map<String, Object> c) throws Exception {
        byte[] bytes = Vectors.read((String) c.get("file"));
        VqmFile f = VqmReader.parse(bytes, (String) c.get("file"));
        List<Object> version = (List<Object>) c.get("version");
        assertEquals(((Number) version.get(0)).intValue(), f.versionMajor, c.get("name") + " version");
        assertEquals(((Number) version.get(1)).intValue(), f.versionMinor, c.get("name") + " version");
        List<Map<String, Object>> expected = (List<Map<String, Object>>) c.get("tensors");
        assertEquals(expected.size(), f.tensors.size(), "tensor count");
        for (int i = 0; i < expected.size(); i++) {
            Map<String, Object> e = expected.get(i);
            VqmTensor t = f.tensors.get(i);
            String what = c.get("name") + ":" + t.name;
            assertEquals(e.get("name"), t.name, what);
            assertEquals(((Number) e.get("groups")).intValue(), t.groups, what + " codebook groups");
            assertEquals(e.get("method"), t.methodName(), what);
            assertEquals(e.get("dtype"), t.decodedDtype(), what);
            List<Object> shape = (List<Object>) e.get("shape");
            assertEquals(shape.size(), t.shape.length, what + " rank");
            for (int j = 0; j < shape.size(); j++) {
                assertEquals(((Number) shape.get(j)).intValue(), t.shape[j], what + " shape");
            }
            byte[] want = Vectors.read((String) e.get("file"));
            byte[] got = t.decodedBytes();
            if (Boolean.TRUE.equals(e.get("exact"))) {
                assertArrayEquals(want, got, what + " must decode byte-exactly as Python does");
            } else {
                assertSvdClose(t, want, got, what);
            }
        }
    }

    /**
     * svd is W = A.B in float32. numpy hands it to BLAS, which sums the r products in its own
     * order (and may fuse multiply-adds); Java sums exactly in double and rounds once. Both are
     * within the textbook bound |error| <= r * eps32 * sum_p |a_ip * b_pj| of the exact product,
     * so they differ by at most twice that (plus one ulp for Java's final rounding).
     */
    private static void assertSvdClose(VqmTensor t, byte[] want, byte[] got, String what) {
        float[] a = t.floats("factor_a");
        float[] b = t.floats("factor_b");
        int m = (int) t.m; // an N-D weight is its m x n matrix (vqexport/ir.py matrix_shape)
        int n = (int) t.n;
        float[] w = floats(want);
        float[] g = floats(got);
        assertEquals(w.length, g.length, what);
        double eps = Math.ulp(1.0f);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double mag = 0;
                for (int p = 0; p < t.rank; p++) {
                    mag += Math.abs((double) a[i * t.rank + p] * b[p * n + j]);
                }
                double tol = 2 * t.rank * eps * mag + Math.ulp(w[i * n + j]);
                double diff = Math.abs(w[i * n + j] - g[i * n + j]);
                if (diff > tol) {
                    fail(what + "[" + i + "," + j + "]: python " + w[i * n + j] + ", java " + g[i * n + j]
                            + ", |diff| " + diff + " > bound " + tol);
                }
            }
        }
    }

    private static float[] floats(byte[] le) {
        float[] out = new float[le.length / 4];
        ByteBuffer.wrap(le).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    @Test
    void coversEveryMethodAndSeveralIndexWidths() throws Exception {
        Set<String> methods = new TreeSet<>();
        Set<Integer> widths = new TreeSet<>();
        boolean f16 = false;
        for (Map<String, Object> c : Vectors.list("vqm")) {
            VqmFile f = VqmReader.parse(Vectors.read((String) c.get("file")), (String) c.get("file"));
            for (VqmTensor t : f.tensors) {
                methods.add(t.methodName());
                if (t.sections.containsKey("indices")) {
                    widths.add(t.bits);
                }
                VqmTensor.Section cb = t.sections.get("codebook");
                f16 |= cb != null && cb.dtype == 1;
            }
        }
        assertEquals(new TreeSet<>(List.of("raw", "binary", "kmeans", "pq", "rq", "svd", "vq")), methods);
        assertTrue(widths.size() >= 5, "index widths covered: " + widths);
        assertTrue(f16, "a float16 codebook is covered");
    }

    @TestFactory
    List<DynamicTest> rejectsCorruptFilesWithTheSameKind() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Map<String, Object> c : Vectors.list("corrupt")) {
            String name = (String) c.get("name");
            tests.add(DynamicTest.dynamicTest(name, () -> {
                byte[] bytes = Vectors.read((String) c.get("file"));
                VqmException e = assertThrows(VqmException.class, () -> VqmReader.parse(bytes, name + ".vqm"),
                        name + " must be rejected (Python: " + c.get("python") + ")");
                assertEquals(VqmException.Kind.valueOf((String) c.get("kind")), e.kind(),
                        name + ": Java says '" + e.getMessage() + "', Python says '" + c.get("python") + "'");
                assertTrue(e.getMessage().startsWith(name + ".vqm: "), "the message names the file: " + e.getMessage());
                assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
            }));
        }
        assertFalse(tests.isEmpty());
        return tests;
    }

    @Test
    void metadataInputIsReadable() throws Exception {
        for (Map<String, Object> c : Vectors.list("vqm")) {
            VqmFile f = VqmReader.parse(Vectors.read((String) c.get("file")), (String) c.get("file"));
            assertEquals("vqm", f.metadata.get("format"));
            assertEquals(c.get("metadata_input"), f.metadata.get("input"));
        }
    }
}
