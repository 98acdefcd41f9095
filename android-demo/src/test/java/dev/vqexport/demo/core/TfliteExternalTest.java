package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The decode="load" loader against Python's expansion of the same file (make_test_vectors.py). */
class TfliteExternalTest {

    @Test
    void expandsLikePython() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] file = Vectors.read((String) part.get("load_model"));
        byte[] want = Vectors.read((String) part.get("load_expanded"));
        ByteBuffer got = TfliteExternal.expand(ByteBuffer.wrap(file), "load.tflite");
        assertEquals(want.length, got.capacity());
        assertTrue(got.isDirect(), "the Interpreter takes a direct buffer");
        assertEquals(ByteOrder.nativeOrder(), got.order());
        byte[] bytes = new byte[got.capacity()];
        got.duplicate().get(bytes);
        // The file's own bytes come first, untouched.
        assertArrayEquals(file, Arrays.copyOf(bytes, file.length));
        // Slots: Java's decode against Python's. PQ is a pure gather of float32 codewords, so the
        // floats are bit-identical; the comparison is on the raw bytes.
        @SuppressWarnings("unchecked")
        List<List<Object>> slots = (List<List<Object>>) part.get("load_slots");
        assertTrue(!slots.isEmpty());
        for (List<Object> s : slots) {
            int off = ((Number) s.get(1)).intValue();
            int size = ((Number) s.get(2)).intValue();
            assertTrue(off >= file.length, s.get(0) + " lies after the file");
            assertArrayEquals(Arrays.copyOfRange(want, off, off + size), Arrays.copyOfRange(bytes, off, off + size),
                    (String) s.get(0));
        }
        // Everything else (alignment padding) is zero in both.
        assertArrayEquals(want, bytes);
    }

    @Test
    void otherModelsAreLeftAlone() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] file = Vectors.read((String) part.get("model"));
        assertNull(TfliteExternal.expand(ByteBuffer.wrap(file), "model.tflite"));
    }

    @Test
    void rejectsAnOffsetOutsideTheDecodeArea() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] bad = Vectors.read((String) part.get("load_bad_offset"));
        IOException e = assertThrows(IOException.class, () -> TfliteExternal.expand(ByteBuffer.wrap(bad), "bad.tflite"));
        assertTrue(e.getMessage().startsWith("bad.tflite: layer "), e.getMessage());
        assertTrue(e.getMessage().contains("outside the decode area"), e.getMessage());
    }

    @Test
    void rejectsTwoSlotsForOneLayer() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] bad = Vectors.read((String) part.get("load_dup_slot"));
        IOException e = assertThrows(IOException.class, () -> TfliteExternal.expand(ByteBuffer.wrap(bad), "dup.tflite"));
        assertTrue(e.getMessage().startsWith("dup.tflite: two slots for the same layer"), e.getMessage());
    }

    @Test
    void rejectsACorruptEmbeddedVqm() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] file = Vectors.read((String) part.get("load_model")).clone();
        byte[] vqm = TfliteMetadata.find(file, TfliteExternal.EMBED_NAME);
        int at = indexOf(file, vqm);
        file[at + vqm.length - 2] ^= 0x5A; // inside the .vqm's JSON metadata, which its crc32 covers
        VqmException e = assertThrows(VqmException.class, () -> TfliteExternal.expand(ByteBuffer.wrap(file), "c.tflite"));
        assertEquals(VqmException.Kind.CHECKSUM, e.kind());
        assertTrue(e.getMessage().startsWith("c.tflite (vqexport.vqm): "), e.getMessage());
    }

    @Test
    void decodesTheTransposeBlockByBlock() throws Exception {
        // W (2 x 3) of VqmReaderTest.kmeans2x3 is [[-1, 0.5, 2], [2, 0.5, -1]]; a WT slot holds
        // [[-1, 2], [0.5, 0.5], [2, -1]]. Any start and length give the same values.
        TinyVqm v = new TinyVqm();
        v.recs.add(VqmReaderTest.kmeans2x3());
        VqmTensor t = VqmReader.parse(v.build(), "t.vqm").get("fc.weight");
        float[] wt = new float[6];
        t.decodeRange(true, 0, wt, 0, 6, new double[1]);
        assertArrayEquals(new float[] {-1f, 2f, 0.5f, 0.5f, 2f, -1f}, wt);
        float[] part = new float[3];
        t.decodeRange(true, 2, part, 0, 3, new double[1]);
        assertArrayEquals(new float[] {0.5f, 0.5f, 2f}, part);
        t.decodeRange(false, 1, part, 0, 3, new double[1]);
        assertArrayEquals(new float[] {0.5f, 2f, 2f}, part);
    }

    @Test
    void decodesIntoAMappedFileInTheCacheFolder(@TempDir java.io.File cache) throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] file = Vectors.read((String) part.get("load_model"));
        byte[] want = Vectors.read((String) part.get("load_expanded"));
        ByteBuffer got = TfliteExternal.expand(ByteBuffer.wrap(file), "load.tflite", VqmLimits.DEFAULT, cache);
        assertTrue(got instanceof java.nio.MappedByteBuffer, "a mapped file, not heap or direct memory");
        byte[] bytes = new byte[got.capacity()];
        got.duplicate().get(bytes);
        assertArrayEquals(want, bytes);
        assertEquals(0, cache.list().length, "the temporary file is unlinked once mapped");
        IOException e = assertThrows(IOException.class, () -> TfliteExternal.expand(ByteBuffer.wrap(file), "load.tflite",
                VqmLimits.DEFAULT, new java.io.File(cache, "missing")));
        assertTrue(e.getMessage().contains("cache folder"), e.getMessage());
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("embedded .vqm not found in the file");
    }
}
