package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The table-driven decoder against payloads built here, independently of it, straight from
 * FORMAT.md: every block size from 1 to 2048 (so blocks end mid-lookup and mid-byte), index widths
 * 1..16, codes up to 24 bits (past the lookup, so the first-code search runs), a one-symbol code,
 * and a stream that runs into the next block. The Python vectors only have the writer's
 * block size and widths 3..8.
 */
class VqmHuffmanDecodeTest {

    /** Random complete code lengths for k symbols, none over max: leaves split at random. */
    private static int[] completeLengths(Random rnd, int present, int k, int max) {
        List<Integer> leaves = new ArrayList<>(List.of(1, 1));
        while (leaves.size() < present) {
            int i = rnd.nextInt(leaves.size());
            if (leaves.get(i) < max) {
                int l = leaves.remove(i) + 1;
                leaves.add(l);
                leaves.add(l);
            }
        }
        int[] lengths = new int[k];
        int[] order = new int[k];
        for (int s = 0; s < k; s++) {
            order[s] = s;
        }
        for (int s = k - 1; s > 0; s--) { // the present symbols: any of the k
            int r = rnd.nextInt(s + 1);
            int t = order[s];
            order[s] = order[r];
            order[r] = t;
        }
        for (int j = 0; j < present; j++) {
            lengths[order[j]] = leaves.get(j);
        }
        return lengths;
    }

    /** The payload of FORMAT.md for these symbols, its canonical codes assigned by (length, value). */
    private static byte[] encode(int[] syms, int[] lengths, int block) {
        long[] code = new long[lengths.length];
        long next = 0;
        int prev = 0;
        for (int l = 1; l <= VqmHuffman.MAX_LENGTH; l++) {
            for (int s = 0; s < lengths.length; s++) {
                if (lengths[s] == l) {
                    next <<= l - prev;
                    prev = l;
                    code[s] = next++;
                }
            }
        }
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        head.write(block & 0xFF);
        head.write(block >>> 8);
        int nblocks = (syms.length + block - 1) / block;
        for (int j = 0; j < nblocks; j++) {
            int bits = 0;
            for (int i = j * block; i < Math.min(syms.length, (j + 1) * block); i++) {
                bits += lengths[syms[i]];
            }
            head.write(bits & 0xFF);
            head.write(bits >>> 8);
        }
        for (int l : lengths) {
            head.write(l);
        }
        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        int acc = 0;
        int n = 0;
        for (int s : syms) {
            for (int b = lengths[s] - 1; b >= 0; b--) {
                acc = acc << 1 | (int) (code[s] >>> b & 1);
                if (++n == 8) {
                    stream.write(acc);
                    acc = 0;
                    n = 0;
                }
            }
        }
        if (n > 0) {
            stream.write(acc << (8 - n));
        }
        head.writeBytes(stream.toByteArray());
        return head.toByteArray();
    }

    private static int[] decode(byte[] payload, int count, int k, int bits) throws VqmHuffman.DamagedException {
        byte[] packed = VqmHuffman.decode(ByteBuffer.wrap(payload), 0, payload.length, count, k, bits);
        return Bits.unpack(packed, 0, count, bits);
    }

    @Test
    void decodesWhatAnIndependentEncoderWrote() throws Exception {
        Random rnd = new Random(7);
        int[] blocks = {1, 2, 3, 5, 7, 8, 13, 64, 100, 1000, 1024, 2047, 2048};
        int cases = 0;
        int longCodes = 0;
        for (int bits = 1; bits <= 16; bits++) {
            for (int rep = 0; rep < 6; rep++) {
                int k = bits == 1 ? 2 : (1 << (bits - 1)) + 1 + rnd.nextInt(1 << (bits - 1));
                int present = 2 + rnd.nextInt(Math.min(k, 300) - 1);
                int[] lengths = completeLengths(rnd, present, k, rep % 2 == 0 ? VqmHuffman.MAX_LENGTH : 12);
                int[] used = new int[present];
                for (int s = 0, j = 0; s < k; s++) {
                    if (lengths[s] > 0) {
                        used[j++] = s;
                    }
                }
                int count = 1 + rnd.nextInt(5000);
                int[] syms = new int[count];
                for (int i = 0; i < count; i++) {
                    // Half drawn as the code expects (short codes often), half uniformly (long ones often).
                    syms[i] = used[rnd.nextBoolean() ? Math.min(present - 1, Integer.numberOfTrailingZeros(rnd.nextInt() | 1 << 30))
                            : rnd.nextInt(present)];
                    longCodes += lengths[syms[i]] > VqmHuffman.FAST_BITS ? 1 : 0;
                }
                int block = blocks[rnd.nextInt(blocks.length)];
                assertArrayEquals(syms, decode(encode(syms, lengths, block), count, k, bits),
                        "bits " + bits + ", k " + k + ", block " + block + ", count " + count);
                cases++;
            }
        }
        assertTrue(cases == 96 && longCodes > 10_000, "codes past the lookup: " + longCodes);
    }

    @Test
    void aOneSymbolCodeDecodesAndItsOtherBitIsNoCode() throws Exception {
        int[] syms = new int[777];
        java.util.Arrays.fill(syms, 2);
        int[] lengths = {0, 0, 1, 0};
        assertArrayEquals(syms, decode(encode(syms, lengths, 100), syms.length, 4, 2));
        byte[] bad = encode(syms, lengths, 100);
        bad[bad.length - 50] = (byte) 0x80; // a 1 bit: no code of a one-symbol code starts with it
        VqmHuffman.DamagedException e = assertThrows(VqmHuffman.DamagedException.class,
                () -> decode(bad, syms.length, 4, 2));
        assertTrue(e.getMessage().contains("no code"), e.getMessage());
    }

    @Test
    void aBlockThatRunsIntoTheNextIsRefused() throws Exception {
        int[] syms = {1, 1, 0, 0, 0, 0};
        int[] lengths = {1, 2, 2};
        byte[] p = encode(syms, lengths, 3);
        // Block bits 5 and 3 moved to 4 and 4: the total and each block's range still agree, but
        // the first block's codes end at bit 5.
        p[2] = 4;
        p[4] = 4;
        VqmHuffman.DamagedException e = assertThrows(VqmHuffman.DamagedException.class,
                () -> decode(p, syms.length, 3, 2));
        assertTrue(e.getMessage().contains("block 0 does not end"), e.getMessage());
    }
}
