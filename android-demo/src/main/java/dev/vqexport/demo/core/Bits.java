package dev.vqexport.demo.core;

import java.nio.ByteBuffer;

/** The index bit packing and f16 widening of docs/FORMAT.md. */
public final class Bits {
    private Bits() {
    }

    /** Bytes that {@code count} values of {@code bits} bits take: ceil(count * bits / 8). */
    public static long packedBytes(long count, int bits) {
        return (count * bits + 7) / 8;
    }

    /**
     * Unpacks {@code count} b-bit values from {@code data} starting at {@code offset}: value i
     * occupies stream bits i*b .. i*b+b-1, lowest first; stream bit j is bit (j mod 8) of byte
     * (j div 8). With b &le; 16 and a start bit of at most 7, a value spans at most 3 bytes.
     */
    public static int[] unpack(byte[] data, int offset, int count, int bits) {
        if (bits < 1 || bits > 16) {
            throw new IllegalArgumentException("index width must be 1..16 bits, got " + bits);
        }
        long need = packedBytes(count, bits);
        if (offset < 0 || offset + need > data.length) {
            throw new IllegalArgumentException("packed indices need " + need + " bytes");
        }
        int[] out = new int[count];
        int mask = (1 << bits) - 1;
        int end = (int) (offset + need);
        long bit = 0;
        for (int i = 0; i < count; i++, bit += bits) {
            int p = offset + (int) (bit >>> 3);
            int shift = (int) (bit & 7);
            int w = data[p] & 0xFF;
            if (p + 1 < end) {
                w |= (data[p + 1] & 0xFF) << 8;
            }
            if (p + 2 < end) {
                w |= (data[p + 2] & 0xFF) << 16;
            }
            out[i] = (w >>> shift) & mask;
        }
        return out;
    }

    /**
     * Value {@code i} of a packed section that starts at byte {@code off} of {@code b} and is
     * {@code len} bytes long, read in place (absolute gets, the buffer is not moved). The caller
     * has checked that the section holds value i.
     */
    public static int get(ByteBuffer b, int off, int len, long i, int bits) {
        long bit = i * bits;
        int p = off + (int) (bit >>> 3);
        int end = off + len;
        int w = b.get(p) & 0xFF;
        if (p + 1 < end) {
            w |= (b.get(p + 1) & 0xFF) << 8;
        }
        if (p + 2 < end) {
            w |= (b.get(p + 2) & 0xFF) << 16;
        }
        return (w >>> (int) (bit & 7)) & ((1 << bits) - 1);
    }

    /** IEEE binary16 to binary32, exact (every f16 is an f32), including subnormals, inf and NaN. */
    public static float halfToFloat(int h) {
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        int bits;
        if (exp == 0x1F) {
            bits = sign | 0x7F800000 | (mant << 13);
        } else if (exp != 0) {
            bits = sign | ((exp + 112) << 23) | (mant << 13);
        } else if (mant == 0) {
            bits = sign;
        } else {
            // Subnormal: normalise the mantissa; 2^-14 * mant/1024 in f32.
            int e = 113;
            while ((mant & 0x400) == 0) {
                mant <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((mant & 0x3FF) << 13);
        }
        return Float.intBitsToFloat(bits);
    }
}
