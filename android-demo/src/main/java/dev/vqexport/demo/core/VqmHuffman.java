package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

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
        long start = 0;
        long at = 0;
        for (long j = 0; j < nblocks; j++) {
            int blockBits = p.getShort(base + 2 + (int) (2 * j)) & 0xFFFF;
            long n = Math.min(block, count - at);
            if (blockBits < n || blockBits > n * table.maxLen) {
                throw new DamagedException("block " + j + "'s bit count cannot hold its symbols");
            }
            long pos = start;
            long end = start + blockBits;
            for (long i = 0; i < n; i++, at++) {
                long window = window(p, stream, streamLen, pos, table.maxLen);
                int length = table.lengthOf(window);
                if (length < 0) {
                    throw new DamagedException("the stream holds a bit pattern that is no code");
                }
                int sym = table.symbol(window, length);
                put(out, at, sym, bits);
                pos += length;
                if (pos > end) {
                    throw new DamagedException("block " + j + " does not end where its bit count says");
                }
            }
            if (pos != end) {
                throw new DamagedException("block " + j + " does not end where its bit count says");
            }
            start = end;
        }
        return out;
    }

    /** The {@code width} bits from stream bit {@code pos}, MSB first; bits past the stream read as 0. */
    private static long window(ByteBuffer p, int stream, long streamLen, long pos, int width) {
        long byteAt = pos >>> 3;
        long w = 0;
        for (int i = 0; i < 4; i++) {
            w = (w << 8) | (byteAt + i < streamLen ? p.get(stream + (int) (byteAt + i)) & 0xFF : 0);
        }
        return ((w << (pos & 7)) & 0xFFFFFFFFL) >>> (32 - width);
    }

    /** Index {@code i} of {@code bits} bits into a packed array, least significant bit first. */
    private static void put(byte[] out, long i, int v, int bits) {
        long bit = i * bits;
        int left = bits;
        while (left > 0) {
            int at = (int) (bit >>> 3);
            int shift = (int) (bit & 7);
            int take = Math.min(left, 8 - shift);
            out[at] |= (byte) ((v & ((1 << take) - 1)) << shift);
            v >>>= take;
            bit += take;
            left -= take;
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

        Table(ByteBuffer p, int at, int k) throws DamagedException {
            int[] counts = new int[MAX_LENGTH + 1];
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
