package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The canonical Huffman index sections of .vqm 3.0 (docs/FORMAT.md "Huffman-coded indices"; the
 * Python reference is vqexport/formats/huffman.py). {@link #decode} checks the payload as it
 * goes and returns the indices packed at {@code bits} bits, as a packed section holds them, so the
 * rest of the reader and every decode work unchanged. Its work is O(count + k) whatever the bytes
 * say: each block decodes at most its own number of codes, and the stream is read through a
 * bounded bit reader, so a damaged payload is an exception, never a hang or a read out of bounds.
 */
final class VqmHuffman {
    static final int MAX_LENGTH = 24;
    static final int MAX_BLOCK = 2048;
    /**
     * Codes up to this long decode by one table lookup (2^FAST_BITS ints, 8 KiB, cache-resident);
     * longer ones, rare by construction, by the canonical first-code search.
     */
    static final int FAST_BITS = 11;
    /**
     * A lookup entry: the codes' packed symbols in bits 8..31, how many codes in bits 5..7 and
     * their total length in bits 0..4; NONE where the first code is longer than the lookup.
     */
    private static final int NONE = -1;
    private static final int PACKED_BITS = 24;
    private static final int MAX_PER_LOOKUP = 7;

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
        byte[] bytes = new byte[(int) streamLen];
        p.position(stream);
        p.get(bytes);
        decodeBlocks(table, bytes, blockBits, block, count, out, bits);
        return out;
    }

    /**
     * Decodes the blocks' codes one after another into {@code out}, packed at {@code bits} bits.
     * The stream goes through a 64-bit buffer refilled a byte at a time, the output through another
     * flushed 32 bits at a time, and one table lookup on the next {@code fastBits} bits decodes every
     * code that lies whole in them, already packed: bit by bit and a code at a time, these were
     * most of the decode's cost (each lookup waits for the previous code's length). Near a block's
     * end the single-code table is used, so that no lookup decodes past the block and its end check
     * still finds each block's own codes. Bits past the stream read as 0, so a damaged block runs
     * on for at most its own number of codes and then fails that check; the reads and writes stay
     * inside {@code in} and {@code out} whatever the stream says.
     */
    private static void decodeBlocks(Table table, byte[] in, int[] blockBits, int block, long count, byte[] out,
                                     int bits) throws DamagedException {
        final int perLookup = Math.min(MAX_PER_LOOKUP, PACKED_BITS / bits);
        final int[] single = table.lookup();
        final int[] multi = perLookup > 1 ? table.lookup(single, bits, perLookup) : single;
        final int fastShift = 64 - table.fastBits;
        final int slowShift = 64 - table.maxLen;
        final int mask = (1 << bits) - 1;
        // Branch-free refills and stores (unpredictable branches were the cost): a whole word is
        // read while 8 bytes remain, and 4 bytes are stored at w while they fit, later bytes
        // overwriting what is not yet final. A full 32 bits are always followed by 4 more bytes.
        final ByteBuffer words = ByteBuffer.wrap(in);
        final int lastWord = in.length - 8;
        final int lastOut = out.length - 4;
        long buf = 0; // unread stream bits, the next one in bit 63
        int have = 0; // how many of buf's bits are stream bits (or zeros past its end)
        int next = 0; // the next byte of `in` to load
        long acc = 0; // output bits not yet stored, the first in bit 0
        int accBits = 0;
        int w = 0;
        long end = 0;
        long at = 0;
        for (int j = 0; j < blockBits.length; j++) {
            end += blockBits[j];
            int n = (int) Math.min(block, count - at);
            for (int i = 0; i < n; ) {
                if (next <= lastWord) {
                    buf |= words.getLong(next) >>> have;
                    next += (63 - have) >>> 3;
                    have |= 56;
                } else {
                    while (have <= 56) {
                        buf |= (long) (next < in.length ? in[next] & 0xFF : 0) << (56 - have);
                        have += 8;
                        next++;
                    }
                }
                // Two lookups a refill: it leaves at least 56 bits and a code takes at most 24. A
                // refill every code put its load on the chain from one code's length to the next.
                for (int twice = 0; twice < 2 && i < n; twice++) {
                    int e = (i <= n - perLookup ? multi : single)[(int) (buf >>> fastShift)];
                    int length;
                    if (e != NONE) {
                        length = e & 31;
                        acc |= (long) (e >>> 8) << accBits;
                        int codes = (e >>> 5) & 7;
                        accBits += codes * bits;
                        i += codes;
                    } else {
                        long window = buf >>> slowShift;
                        length = table.lengthOf(window);
                        if (length < 0) {
                            throw new DamagedException("the stream holds a bit pattern that is no code");
                        }
                        acc |= (long) (table.symbol(window, length) & mask) << accBits;
                        accBits += bits;
                        i++;
                    }
                    buf <<= length;
                    have -= length;
                    if (w <= lastOut) {
                        out[w] = (byte) acc;
                        out[w + 1] = (byte) (acc >>> 8);
                        out[w + 2] = (byte) (acc >>> 16);
                        out[w + 3] = (byte) (acc >>> 24);
                    }
                    int full = accBits >>> 5;
                    w += full << 2;
                    acc >>>= full << 5;
                    accBits &= 31;
                }
            }
            at += n;
            if ((long) next * 8 - have != end) {
                throw new DamagedException("block " + j + " does not end where its bit count says");
            }
        }
        for (; accBits > 0; accBits -= 8, acc >>>= 8) {
            out[w++] = (byte) acc;
        }
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
        int[] lookup() {
            int[] one = new int[1 << fastBits];
            Arrays.fill(one, NONE);
            for (int l = 1; l <= fastBits; l++) {
                for (int c = 0; c < counts[l]; c++) {
                    int from = (int) (first[l] + c) << (fastBits - l);
                    Arrays.fill(one, from, from + (1 << (fastBits - l)), symbols[index[l] + c] << 8 | 1 << 5 | l);
                }
            }
            return one;
        }

        /**
         * The lookup for up to {@code perLookup} codes that lie whole in the next fastBits bits,
         * their symbols packed at {@code bits} bits as the output holds them. A symbol is below
         * k &le; 2^bits, so it fits its field.
         */
        int[] lookup(int[] one, int bits, int perLookup) {
            int size = one.length;
            int[] many = new int[size];
            for (int v = 0; v < size; v++) {
                int used = 0;
                int codes = 0;
                int packed = 0;
                while (codes < perLookup) {
                    int e = one[(v << used) & (size - 1)];
                    if (e == NONE || (e & 31) > fastBits - used) {
                        break; // the next code is not whole in the window's bits
                    }
                    packed |= (e >>> 8) << (codes * bits);
                    used += e & 31;
                    codes++;
                }
                many[v] = codes == 0 ? NONE : packed << 8 | codes << 5 | used;
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
