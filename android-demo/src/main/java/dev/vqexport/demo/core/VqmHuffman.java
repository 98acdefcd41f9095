package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The canonical Huffman index sections of .vqm 3.0 (docs/FORMAT.md "Huffman-coded indices"; the
 * Python reference is vqexport/formats/huffman.py). {@link #decode} checks the payload as it
 * goes and returns the indices packed at {@code bits} bits, as a packed section holds them, so the
 * rest of the reader and every decode work unchanged. Its work is O(count + k), plus two lookup
 * tables of 2^FAST_BITS entries, whatever the bytes say: each block decodes exactly its own number
 * of codes, and the stream is read through bounded bit readers (HuffmanLane), so a damaged payload
 * is an exception, never a hang or a read out of bounds.
 */
final class VqmHuffman {
    static final int MAX_LENGTH = 24;
    static final int MAX_BLOCK = 2048;
    /**
     * Codes up to this long decode by one table lookup (2^FAST_BITS longs, 16 KiB, in the L1 cache);
     * longer ones, rare by construction, by the canonical first-code search.
     */
    static final int FAST_BITS = 11;
    /**
     * A lookup entry (a long): the codes' total length in bits 0..5, where a long shift takes its
     * count from, so the bit buffer shifts by the entry itself; the output bits they fill (codes
     * times the index width) in bits 6..11; their symbols, packed as the output holds them, from
     * bit 12. NONE where the first code is longer than the lookup (its length field, 63, is no
     * length). Fields, not counts, so that a lookup costs few instructions: the decode is bound
     * by their number more than by the lookups' latency.
     */
    static final long NONE = -1L;
    /** Output bits an entry holds at most: the 64-bit output buffer, under 32 between stores, never overflows. */
    static final int PACKED_BITS = 32;

    private VqmHuffman() {
    }

    /** A payload that does not decode to exactly the declared indices; the message says why. */
    static final class DamagedException extends Exception {
        private static final long serialVersionUID = 1L;

        DamagedException(String message) {
            super(message);
        }
    }

    /**
     * Decodes {@code count} indices of a k-value alphabet from the {@code len} payload bytes at
     * {@code off} of {@code file}, packed LSB-first at {@code bits} bits (FORMAT.md "Bit packing").
     * The caller has checked that the section's dims fit the tensor, so the packed array is no
     * larger than the indices the tensor declares.
     */
    static byte[] decode(ByteBuffer file, long off, long len, long count, int k, int bits) throws DamagedException {
        ByteBuffer p = file.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int base = (int) off;
        if (len < 2) {
            throw new DamagedException("shorter than its block size field");
        }
        int block = p.getShort(base) & 0xFFFF;
        if (block < 1 || block > MAX_BLOCK) {
            throw new DamagedException("block size " + block + " is outside 1.." + MAX_BLOCK);
        }
        long nblocks = (count + block - 1) / block;
        long head = 2 + 2 * nblocks + k;
        if (len < head) {
            throw new DamagedException(len + " bytes cannot hold its " + nblocks + " block sizes and " + k + " code lengths");
        }
        int lengthsAt = base + 2 + (int) (2 * nblocks);
        Table table = new Table(p, lengthsAt, k);
        long total = 0;
        for (long j = 0; j < nblocks; j++) {
            total += p.getShort(base + 2 + (int) (2 * j)) & 0xFFFF;
        }
        long streamLen = len - head;
        if ((total + 7) / 8 != streamLen) {
            throw new DamagedException("its blocks take " + total + " bits, so the stream needs " + (total + 7) / 8
                    + " bytes, and it has " + streamLen);
        }
        int stream = base + (int) head;
        if (total % 8 != 0 && ((p.get(stream + (int) streamLen - 1) & 0xFF) & ((1 << (8 - total % 8)) - 1)) != 0) {
            throw new DamagedException("the padding bits after the last code are not 0");
        }
        long packedLen = Bits.packedBytes(count, bits);
        if (packedLen > VqmTensor.MAX_ARRAY) {
            throw new DamagedException(count + " indices do not fit in one Java array");
        }
        byte[] out = new byte[(int) packedLen];
        int[] blockBits = new int[(int) nblocks];
        for (int j = 0; j < nblocks; j++) {
            blockBits[j] = p.getShort(base + 2 + 2 * j) & 0xFFFF;
            long n = Math.min(block, count - (long) j * block);
            if (blockBits[j] < n || blockBits[j] > n * table.maxLen) {
                throw new DamagedException("block " + j + "'s bit count cannot hold its symbols");
            }
        }
        // Read in place, big-endian: the stream is MSB first, and a word read is 8 of its bytes.
        ByteBuffer words = file.duplicate().order(ByteOrder.BIG_ENDIAN);
        decodeBlocks(table, words, stream, (int) streamLen, blockBits, block, count, out, bits);
        return out;
    }

    /**
     * Decodes the blocks into {@code out}, packed at {@code bits} bits: the first h blocks on one
     * lane and the rest on another, in lockstep (HuffmanLane), h about half of them and such that
     * the second lane's output starts on a byte. Blocks that cannot be paired run alone.
     */
    private static void decodeBlocks(Table table, ByteBuffer words, int stream, int streamLen, int[] blockBits,
                                     int block, long count, byte[] out, int bits) throws DamagedException {
        int perLookup = Math.min(FAST_BITS, PACKED_BITS / bits); // a code takes at least a bit
        long[] single = table.lookup(bits);
        long[] multi = perLookup > 1 ? table.lookup(single, bits, perLookup) : single;
        int nb = blockBits.length;
        int h = nb / 2;
        while (h > 0 && (long) h * block * bits % 8 != 0) {
            h--;
        }
        int split = (int) ((long) h * block * bits / 8);
        long yStart = 0;
        for (int j = 0; j < h; j++) {
            yStart += blockBits[j];
        }
        HuffmanLane x = new HuffmanLane(table, single, multi, perLookup, words, stream, streamLen, out, bits, 0, 0,
                split);
        HuffmanLane y = new HuffmanLane(table, single, multi, perLookup, words, stream, streamLen, out, bits, yStart,
                split, out.length);
        for (int q = 0; q < h; q++) {
            int ny = (int) Math.min(block, count - (long) (h + q) * block);
            if (ny == block) {
                HuffmanLane.pair(x, q, blockBits[q], y, h + q, blockBits[h + q], block);
            } else {
                x.block(q, block, blockBits[q]);
                y.block(h + q, ny, blockBits[h + q]);
            }
        }
        for (int j = 2 * h; j < nb; j++) {
            y.block(j, (int) Math.min(block, count - (long) j * block), blockBits[j]);
        }
        x.flush();
        y.flush();
    }

    /** A checked canonical code, as the lengths define it (FORMAT.md "The code"). */
    static final class Table {
        final int maxLen;
        /** Symbols sorted by (length, value). */
        private final int[] symbols;
        /** For each length l: its first code, the position of its first symbol, and the exclusive limit of windows. */
        private final long[] first = new long[MAX_LENGTH + 2];
        private final int[] index = new int[MAX_LENGTH + 2];
        private final long[] limit = new long[MAX_LENGTH + 2];
        private final int[] counts = new int[MAX_LENGTH + 1];
        /** The bits a lookup table is indexed by. */
        final int fastBits;

        Table(ByteBuffer p, int at, int k) throws DamagedException {
            int present = 0;
            int longest = 0;
            long kraft = 0;
            for (int s = 0; s < k; s++) {
                int l = p.get(at + s) & 0xFF;
                if (l > MAX_LENGTH) {
                    throw new DamagedException("a code length is " + l + ", over " + MAX_LENGTH);
                }
                if (l > 0) {
                    counts[l]++;
                    present++;
                    longest = Math.max(longest, l);
                    kraft += 1L << (MAX_LENGTH - l);
                }
            }
            if (present == 1) {
                if (longest != 1) {
                    throw new DamagedException("a one-symbol code must have length 1");
                }
            } else if (kraft != 1L << MAX_LENGTH) {
                throw new DamagedException("the code lengths do not form a complete prefix code (Kraft sum "
                        + (kraft / (double) (1L << MAX_LENGTH)) + ", must be 1)");
            }
            maxLen = longest;
            symbols = new int[present];
            int[] next = new int[MAX_LENGTH + 2];
            long code = 0;
            for (int l = 1; l <= maxLen; l++) {
                if (l > 1) {
                    code = (code + counts[l - 1]) << 1;
                    index[l] = index[l - 1] + counts[l - 1];
                }
                first[l] = code;
                next[l] = index[l];
                limit[l] = (code + counts[l]) << (maxLen - l);
            }
            for (int s = 0; s < k; s++) {
                int l = p.get(at + s) & 0xFF;
                if (l > 0) {
                    symbols[next[l]++] = s;
                }
            }
            fastBits = FAST_BITS;
        }

        /**
         * The lookup on the next fastBits bits for one code (entry layout at {@link #NONE}): the
         * code is complete, so every code up to fastBits long owns a whole range of the table.
         */
        long[] lookup(int bits) {
            long[] one = new long[1 << fastBits];
            Arrays.fill(one, NONE);
            for (int l = 1; l <= fastBits; l++) {
                for (int c = 0; c < counts[l]; c++) {
                    int from = (int) (first[l] + c) << (fastBits - l);
                    Arrays.fill(one, from, from + (1 << (fastBits - l)), entry(symbols[index[l] + c], bits, 1, l));
                }
            }
            return one;
        }

        /** An entry for {@code codes} codes of {@code length} bits in all, their symbols packed. */
        static long entry(long packed, int bits, int codes, int length) {
            return packed << 12 | (long) (codes * bits) << 6 | length;
        }

        /**
         * The lookup for up to {@code perLookup} codes that lie whole in the next fastBits bits,
         * their symbols packed at {@code bits} bits as the output holds them. A symbol is below
         * k &le; 2^bits, so it fits its field.
         */
        long[] lookup(long[] one, int bits, int perLookup) {
            int size = one.length;
            long[] many = new long[size];
            for (int v = 0; v < size; v++) {
                int used = 0;
                int codes = 0;
                long packed = 0;
                while (codes < perLookup) {
                    long e = one[(v << used) & (size - 1)];
                    if (e == NONE || (int) (e & 63) > fastBits - used) {
                        break; // the next code is not whole in the window's bits
                    }
                    packed |= (e >>> 12) << (codes * bits);
                    used += (int) (e & 63);
                    codes++;
                }
                many[v] = codes == 0 ? NONE : entry(packed, bits, codes, used);
            }
            return many;
        }

        /** The length of the code a maxLen-bit window starts with; -1 if it starts with none. */
        int lengthOf(long window) {
            for (int l = 1; l <= maxLen; l++) {
                if (window < limit[l]) {
                    return l;
                }
            }
            return -1;
        }

        int symbol(long window, int length) {
            return symbols[index[length] + (int) ((window >>> (maxLen - length)) - first[length])];
        }
    }
}
