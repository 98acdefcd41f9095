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
    void transposeIsHandCheckable() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, TfliteExternal.transpose(new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
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
