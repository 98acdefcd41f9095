package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * What .vqm 2.0 added (whole-model compression), on the Python vectors: N-D weights, grouped
 * codebooks, method vq, the version rule and the new metadata keys. The decodes themselves are
 * compared byte for byte with Python's in VqmVectorsTest; this checks that the vectors cover
 * each addition, so that comparison cannot pass by leaving one out.
 */
class VqmV2VectorsTest {

    @Test
    void coversEveryMethodOnA4dWeightAndGroupedCodebooks() throws Exception {
        Set<String> fourD = new TreeSet<>();
        Set<String> grouped = new TreeSet<>();
        Set<Integer> versions = new TreeSet<>();
        for (Map<String, Object> c : Vectors.list("vqm")) {
            VqmFile f = VqmReader.parse(Vectors.read((String) c.get("file")), (String) c.get("file"));
            versions.add(f.versionMajor);
            boolean v2 = false;
            for (VqmTensor t : f.tensors) {
                v2 |= t.needsV2();
                if (t.method != 0 && t.shape.length == 4) {
                    fourD.add(t.methodName());
                    assertEquals((long) t.shape[1] * t.shape[2] * t.shape[3], t.n, t.name + ": n is the product of shape[1:]");
                }
                if (t.groups > 1) {
                    grouped.add(t.methodName());
                }
            }
            boolean coded = false;
            for (VqmTensor t : f.tensors) {
                VqmTensor.Section idx = t.sections.get("indices");
                coded |= idx != null && idx.codedLength > 0;
            }
            // A file is written at the lowest version that holds it (3: Huffman-coded indices).
            assertEquals(coded ? 3 : v2 ? 2 : 1, f.versionMajor, c.get("name") + ": version");
        }
        assertEquals(new TreeSet<>(List.of("binary", "kmeans", "pq", "rq", "svd", "vq")), fourD);
        assertEquals(new TreeSet<>(List.of("binary", "kmeans", "pq", "vq")), grouped);
        assertEquals(new TreeSet<>(List.of(1, 2, 3)), versions);
    }

    @Test
    @SuppressWarnings("unchecked")
    void acceptsTheWholeModelMetadataKeys() throws Exception {
        boolean seen = false;
        for (Map<String, Object> c : Vectors.list("vqm")) {
            if (!((String) c.get("name")).startsWith("conv_")) {
                continue;
            }
            VqmFile f = VqmReader.parse(Vectors.read((String) c.get("file")), (String) c.get("file"));
            Map<String, Object> config = (Map<String, Object>) f.metadata.get("config");
            assertTrue(f.metadata.get("folded") instanceof List, c.get("name") + ": the BatchNorm fold is recorded");
            for (String key : new String[] {"types", "min_size", "group_size", "fold_batchnorm"}) {
                assertTrue(config.containsKey(key), c.get("name") + ": config." + key);
            }
            Map<String, Object> layer = (Map<String, Object>) ((Map<String, Object>) f.metadata.get("layers")).get("0.weight");
            assertEquals("conv", layer.get("type"), (String) c.get("name"));
            seen = true;
        }
        assertTrue(seen, "no conv_* case in the vectors");
    }

    /** decodePermuted against the Java decode transposed by hand (OIHW -> OHWI), from any start. */
    @Test
    void permutedDecodeIsTheTransposedTensor() throws Exception {
        int[] axes = {0, 2, 3, 1};
        int checked = 0;
        for (Map<String, Object> c : Vectors.list("vqm")) {
            VqmFile f = VqmReader.parse(Vectors.read((String) c.get("file")), (String) c.get("file"));
            for (VqmTensor t : f.tensors) {
                if (t.method == 0 || t.shape.length != 4) {
                    continue;
                }
                int o = t.shape[0];
                int i = t.shape[1];
                int h = t.shape[2];
                int w = t.shape[3];
                float[] dense = t.decode();
                float[] want = new float[dense.length];
                int p = 0;
                for (int a = 0; a < o; a++) {
                    for (int b = 0; b < h; b++) {
                        for (int cc = 0; cc < w; cc++) {
                            for (int d = 0; d < i; d++) {
                                want[p++] = dense[((a * i + d) * h + b) * w + cc];
                            }
                        }
                    }
                }
                float[] got = new float[dense.length];
                double[] acc = new double[1];
                // Uneven blocks, so that a block starts inside every dimension.
                for (int start = 0; start < got.length; start += 7) {
                    t.decodePermuted(axes, start, got, start, Math.min(7, got.length - start), acc);
                }
                // Exact: each element is decoded by the same code as decode(), only in another order.
                assertArrayEquals(want, got, c.get("name") + ":" + t.name);
                checked++;
            }
        }
        assertTrue(checked >= 6, "4-D compressed tensors checked: " + checked);
    }
}
