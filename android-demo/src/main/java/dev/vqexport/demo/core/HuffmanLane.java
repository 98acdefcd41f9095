package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One reader of a Huffman index stream (FORMAT.md "Huffman-coded indices"): it decodes whole blocks
 * from a bit position on and packs their symbols at {@code bits} bits into its own byte range of
 * the output. {@link VqmHuffman#decode} runs two of them on the two halves of the blocks, in
 * lockstep ({@link #pair}): a code's length is known only after its lookup, so one reader is a
 * chain of dependent loads, and two independent chains let the processor overlap them.
 *
 * <p>The stream goes through a 64-bit buffer refilled a word at a time, the output through another
 * stored a 32-bit word at a time (a branch on a full word: it measured cheaper than a branch-free
 * store every lookup, even where a lookup decodes a varying number of codes), and one lookup on
 * the next {@link VqmHuffman.Table#fastBits} bits
 * decodes every code that lies whole in them, already packed (entry layout at
 * {@link VqmHuffman#NONE}). Near a block's end the single-code table is used, so no lookup decodes
 * past the block and its end check finds the block's own codes. Bits past the stream read as 0,
 * so a damaged block runs on for at most its own number of codes and then fails that check: reads
 * and writes stay inside the stream and the lane's range of {@code out} whatever the stream says.
 * The hot loops keep the lane's state in locals: fields there cost a store and a load a code.
 * The decode is bound by instructions a code more than by the lookups' latency, so the entries
 * hold ready-made fields and the loops avoid work a code can skip.
 */
final class HuffmanLane {
    /** A refill leaves at least 56 bits and a code takes at most 24: two lookups a refill. */
    private static final int LOOKUPS_PER_REFILL = 2;

    private final VqmHuffman.Table table;
    /** The file, big-endian, and where in it the stream starts and how long it is. */
    private final ByteBuffer words;
    private final int base;
    private final int len;
    private final byte[] out;
    private final ByteBuffer outLe;
    private final int bits;
    private final int mask;
    /** Output bits a multi-code lookup may fill: within this of a block's end, one code a lookup. */
    private final int reach;
    private final long[] single;
    private final long[] multi;
    /** The last byte a whole-word refill may start at. */
    private final int lastWord;
    private final int outEnd;

    private long buf; // unread stream bits, the next one in bit 63
    private int have; // how many of buf's bits are stream bits (or zeros past its end)
    private int next; // the next stream byte to load
    private long acc; // output bits not yet stored, the first in bit 0
    private int accBits;
    private int w; // where acc's first byte goes
    private long end; // the stream bit the current block ends at

    HuffmanLane(VqmHuffman.Table table, long[] single, long[] multi, int perLookup, ByteBuffer words, int base,
                int len, byte[] out, int bits, long startBit, int outStart, int outEnd) {
        this.table = table;
        this.words = words;
        this.base = base;
        this.len = len;
        this.out = out;
        this.outLe = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        this.bits = bits;
        this.mask = (1 << bits) - 1;
        this.reach = perLookup * bits;
        this.single = single;
        this.multi = multi;
        this.lastWord = base + len - 8;
        this.outEnd = outEnd;
        this.w = outStart;
        this.end = startBit;
        // The start is inside the stream: the blocks before it take at most all its bits.
        this.next = (int) (startBit >>> 3);
        refill();
        int skip = (int) (startBit & 7);
        buf <<= skip;
        have -= skip;
    }

    private void refill() {
        if (base + next <= lastWord) {
            buf |= words.getLong(base + next) >>> have;
            next += (63 - have) >>> 3;
            have |= 56;
        } else {
            while (have <= 56) {
                buf |= (long) (next < len ? words.get(base + next) & 0xFF : 0) << (56 - have);
                have += 8;
                next++;
            }
        }
    }

    /** The single-code entry of a code longer than the table, by the canonical search. */
    private long slowEntry(long b) throws VqmHuffman.DamagedException {
        long window = b >>> (64 - table.maxLen);
        int length = table.lengthOf(window);
        if (length < 0) {
            throw new VqmHuffman.DamagedException("the stream holds a bit pattern that is no code");
        }
        return VqmHuffman.Table.entry(table.symbol(window, length) & mask, bits, 1, length);
    }

    /** Decodes block {@code j}, {@code n} codes in {@code blockBits} bits, alone. */
    void block(int j, int n, int blockBits) throws VqmHuffman.DamagedException {
        end += blockBits;
        finish(j, 0, n * bits);
    }

    /**
     * The current block's output bits {@code done..total} (its last few codes, or all), then its
     * end check.
     */
    private void finish(int j, int done, int total) throws VqmHuffman.DamagedException {
        final ByteBuffer o = outLe;
        final long[] one = single;
        final long[] many = multi;
        final int fastShift = 64 - table.fastBits;
        final int multiUntil = total - reach;
        long b = buf;
        int h = have;
        long a = acc;
        int ab = accBits;
        int at = w;
        while (done < total) {
            if (base + next <= lastWord) {
                b |= words.getLong(base + next) >>> h;
                next += (63 - h) >>> 3;
                h |= 56;
            } else {
                buf = b;
                have = h;
                refill();
                b = buf;
                h = have;
            }
            for (int t = 0; t < LOOKUPS_PER_REFILL && done < total; t++) {
                long e = (done <= multiUntil ? many : one)[(int) (b >>> fastShift)];
                if (e == VqmHuffman.NONE) {
                    e = slowEntry(b);
                }
                int filled = (int) (e >>> 6) & 63;
                a |= (e >>> 12) << ab;
                ab += filled;
                done += filled;
                b <<= e;
                h -= (int) e & 63;
                if (ab >= 32) {
                    o.putInt(at, (int) a);
                    at += 4;
                    a >>>= 32;
                    ab -= 32;
                }
            }
        }
        buf = b;
        have = h;
        acc = a;
        accBits = ab;
        w = at;
        if (8L * next - have != end) {
            throw new VqmHuffman.DamagedException("block " + j + " does not end where its bit count says");
        }
    }

    /**
     * Block {@code jx} on lane x and block {@code jy} on lane y, each of n codes, their lookups
     * interleaved while both blocks have room for them, each block's last codes then alone.
     */
    static void pair(HuffmanLane x, int jx, int bitsX, HuffmanLane y, int jy, int bitsY, int n)
            throws VqmHuffman.DamagedException {
        x.end += bitsX;
        y.end += bitsY;
        final long[] many = x.multi;
        final int fastShift = 64 - x.table.fastBits;
        final int total = n * x.bits;
        final int stop = total - LOOKUPS_PER_REFILL * x.reach; // both lanes' lookups stay in their blocks
        final ByteBuffer o = x.outLe;
        final ByteBuffer wordsX = x.words;
        final ByteBuffer wordsY = y.words;
        final int lastWordX = x.lastWord;
        final int lastWordY = y.lastWord;
        final int baseX = x.base;
        final int baseY = y.base;
        long bx = x.buf;
        int hx = x.have;
        long ax = x.acc;
        int abx = x.accBits;
        int ox = x.w;
        int dx = 0;
        long by = y.buf;
        int hy = y.have;
        long ay = y.acc;
        int aby = y.accBits;
        int oy = y.w;
        int dy = 0;
        while (dx <= stop && dy <= stop) {
            if (baseX + x.next <= lastWordX) {
                bx |= wordsX.getLong(baseX + x.next) >>> hx;
                x.next += (63 - hx) >>> 3;
                hx |= 56;
            } else {
                x.buf = bx;
                x.have = hx;
                x.refill();
                bx = x.buf;
                hx = x.have;
            }
            if (baseY + y.next <= lastWordY) {
                by |= wordsY.getLong(baseY + y.next) >>> hy;
                y.next += (63 - hy) >>> 3;
                hy |= 56;
            } else {
                y.buf = by;
                y.have = hy;
                y.refill();
                by = y.buf;
                hy = y.have;
            }
            for (int t = 0; t < LOOKUPS_PER_REFILL; t++) {
                long ex = many[(int) (bx >>> fastShift)];
                long ey = many[(int) (by >>> fastShift)];
                if (ex == VqmHuffman.NONE) {
                    ex = x.slowEntry(bx);
                }
                if (ey == VqmHuffman.NONE) {
                    ey = y.slowEntry(by);
                }
                int fx = (int) (ex >>> 6) & 63;
                int fy = (int) (ey >>> 6) & 63;
                ax |= (ex >>> 12) << abx;
                ay |= (ey >>> 12) << aby;
                abx += fx;
                aby += fy;
                dx += fx;
                dy += fy;
                bx <<= ex;
                by <<= ey;
                hx -= (int) ex & 63;
                hy -= (int) ey & 63;
                if (abx >= 32) {
                    o.putInt(ox, (int) ax);
                    ox += 4;
                    ax >>>= 32;
                    abx -= 32;
                }
                if (aby >= 32) {
                    o.putInt(oy, (int) ay);
                    oy += 4;
                    ay >>>= 32;
                    aby -= 32;
                }
            }
        }
        x.buf = bx;
        x.have = hx;
        x.acc = ax;
        x.accBits = abx;
        x.w = ox;
        y.buf = by;
        y.have = hy;
        y.acc = ay;
        y.accBits = aby;
        y.w = oy;
        x.finish(jx, dx, total);
        y.finish(jy, dy, total);
    }

    /** Stores the bits still in the output buffer: the lane's last bytes. */
    void flush() {
        for (; accBits > 0 && w < outEnd; accBits -= 8, acc >>>= 8) {
            out[w++] = (byte) acc;
        }
    }
}
