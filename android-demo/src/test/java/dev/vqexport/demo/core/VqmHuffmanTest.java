package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;

/**
 * .vqm 3.0, Huffman-coded indices, on the Python vectors: each coded file decodes byte for byte
 * as its plainly packed twin (and as Python, in VqmVectorsTest), and damaged coded sections,
 * checksums fixed so that only the Huffman checks can catch them, are one-line errors in bounded
 * time. The Python reader's own damaged copies are in the corrupt vectors, with their kinds.
 */
class VqmHuffmanTest {

    @Test
    void codedFilesDecodeAsTheirPackedTwins() throws Exception {
        int pairs = 0;
        int codedTensors = 0;
        for (Map<String, Object> c : Vectors.list("vqm")) {
            String name = (String) c.get("name");
            if (!name.startsWith("coded_") || name.endsWith("_packed")) {
                continue;
            }
            VqmFile coded = VqmReader.parse(Vectors.read((String) c.get("file")), name);
            VqmFile plain = VqmReader.parse(Vectors.read("vqm/" + c.get("twin") + ".vqm"), (String) c.get("twin"));
            assertEquals(3, coded.versionMajor, name);
            assertTrue(plain.versionMajor < 3, name + "'s twin");
            assertEquals(plain.tensors.size(), coded.tensors.size(), name);
            for (int i = 0; i < coded.tensors.size(); i++) {
                VqmTensor a = coded.tensors.get(i);
                VqmTensor b = plain.tensors.get(i);
                VqmTensor.Section idx = a.sections.get("indices");
                if (idx != null && idx.codedLength > 0) {
                    codedTensors++;
                    assertTrue(idx.codedLength < idx.length, a.name + ": coded only where smaller");
                    assertArrayEquals(b.indices(), a.indices(), name + ":" + a.name + " indices");
                }
                assertArrayEquals(b.decodedBytes(), a.decodedBytes(), name + ":" + a.name);
            }
            pairs++;
        }
        assertTrue(pairs >= 4, "coded cases in the vectors: " + pairs);
        assertTrue(codedTensors >= pairs, "Huffman-coded tensors: " + codedTensors);
    }

    /** The one Huffman section of a coded file: {descriptor position, payload offset, length}. */
    private static long[] codedSection(byte[] data) {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        long tableOff = b.getLong(32);
        long tableLen = b.getLong(40);
        for (int pos = (int) tableOff; pos + VqmReader.SECTION_SIZE <= tableOff + tableLen - 4; pos++) {
            long off = b.getLong(pos + 20);
            long len = b.getLong(pos + 28);
            if (b.get(pos) == 2 && b.get(pos + 1) == VqmTensor.HUFFMAN && b.get(pos + 3) == 0 && off % 64 == 0
                    && off > 0 && len > 0 && off + len <= data.length && crc(data, (int) off, (int) len) == (b.getInt(pos + 36) & 0xFFFFFFFFL)) {
                return new long[] {pos, off, len};
            }
        }
        throw new AssertionError("no Huffman section");
    }

    private static long crc(byte[] d, int off, int len) {
        CRC32 c = new CRC32();
        c.update(d, off, len);
        return c.getValue();
    }

    /** The section's and the table's checksums recomputed after its payload was edited in place. */
    private static void fix(byte[] data, long[] sec) {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt((int) sec[0] + 36, (int) crc(data, (int) sec[1], (int) sec[2]));
        int tableOff = (int) b.getLong(32);
        int tableLen = (int) b.getLong(40);
        b.putInt(tableOff + tableLen - 4, (int) crc(data, tableOff, tableLen - 4));
    }

    @Test
    void damagedCodedSectionsAreOneLineErrorsInBoundedTime() throws Exception {
        byte[] good = Vectors.read("vqm/coded_kmeans_k256.vqm"); // the largest code: lengths up to ~14 bits
        long[] sec = codedSection(good);
        VqmReader.parse(good, "good.vqm");
        Random rnd = new Random(20261201L);
        int refused = 0;
        int decoded = 0;
        long slowest = 0;
        for (int i = 0; i < 3000; i++) {
            byte[] d = good.clone();
            int edits = 1 + rnd.nextInt(4);
            for (int e = 0; e < edits; e++) {
                // Half the edits hit the fields before the stream (block size, block bits, code lengths).
                int span = rnd.nextBoolean() ? (int) Math.min(sec[2], 2 + 2 * 64 + 256) : (int) sec[2];
                int at = (int) sec[1] + rnd.nextInt(span);
                d[at] = rnd.nextBoolean() ? (byte) rnd.nextInt(256) : (byte) (d[at] ^ (1 << rnd.nextInt(8)));
            }
            fix(d, sec);
            long t0 = System.nanoTime();
            try {
                VqmFile f = VqmReader.parse(d, "fuzz.vqm");
                for (VqmTensor t : f.tensors) {
                    if (t.method != 0) {
                        t.decode();
                    }
                }
                decoded++;
            } catch (VqmException e) {
                assertTrue(e.getMessage().startsWith("fuzz.vqm: "), e.getMessage());
                assertFalse(e.getMessage().contains("\n"), e.getMessage());
                refused++;
            } catch (RuntimeException | OutOfMemoryError | StackOverflowError e) {
                fail("input " + i + ": " + e);
            }
            slowest = Math.max(slowest, System.nanoTime() - t0);
        }
        assertTrue(refused > 2000, "too few damaged sections refused: " + refused + " (decoded " + decoded + ")");
        assertTrue(slowest < 1_000_000_000L, "slowest input took " + slowest / 1e6 + " ms");
    }

    @Test
    void aTruncatedCodedSectionIsRefused() throws Exception {
        byte[] good = Vectors.read("vqm/coded_kmeans_k16.vqm");
        long[] sec = codedSection(good);
        for (long cut : new long[] {0, 1, 2, 3, sec[2] / 2, sec[2] - 1}) {
            byte[] d = good.clone();
            ByteBuffer b = ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN);
            for (long j = sec[1] + cut; j < sec[1] + sec[2]; j++) {
                d[(int) j] = 0; // the bytes past the cut become padding, as the file requires
            }
            b.putLong((int) sec[0] + 28, cut);
            fix(d, new long[] {sec[0], sec[1], cut});
            try {
                VqmReader.parse(d, "cut.vqm");
                fail("a coded section cut to " + cut + " bytes was read");
            } catch (VqmException e) {
                assertEquals(VqmException.Kind.INVALID, e.kind(), e.getMessage());
                assertTrue(e.getMessage().contains("damaged Huffman section")
                        || e.getMessage().contains("bytes where its dims need"), e.getMessage());
            }
        }
    }
}
