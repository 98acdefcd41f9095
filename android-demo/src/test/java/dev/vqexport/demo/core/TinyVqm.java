package dev.vqexport.demo.core;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/** A test-only .vqm writer that follows FORMAT.md, for tiny hand-checkable fixtures. */
final class TinyVqm {
    static final class Sec {
        int role;
        int dtype;
        int[] dims;
        byte[] payload;
        Long forcedOffset; // to build broken files
        int reserved; // FORMAT.md: must be 0
        int unusedDim; // written into the dims past ndim; FORMAT.md: must be 0

        Sec(int role, int dtype, int[] dims, byte[] payload) {
            this.role = role;
            this.dtype = dtype;
            this.dims = dims;
            this.payload = payload;
        }
    }

    static final class Rec {
        String name;
        int method;
        int[] shape;
        int k;
        int d;
        int rows;
        int stages;
        int rank;
        int bits;
        List<Sec> secs = new ArrayList<>();

        Rec(String name, int method, int[] shape) {
            this.name = name;
            this.method = method;
            this.shape = shape;
        }
    }

    final List<Rec> recs = new ArrayList<>();
    String metadata = "{\"format\":\"vqm\"}";
    int major = 1;
    int minor = 0;
    byte[] tableExtra = new byte[0];

    static byte[] f32(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    static byte[] f16(int... halfBits) {
        ByteBuffer b = ByteBuffer.allocate(2 * halfBits.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int x : halfBits) {
            b.putShort((short) x);
        }
        return b.array();
    }

    static byte[] i64(long... v) {
        ByteBuffer b = ByteBuffer.allocate(8 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long x : v) {
            b.putLong(x);
        }
        return b.array();
    }

    static long crc(byte[] d, int off, int len) {
        CRC32 c = new CRC32();
        c.update(d, off, len);
        return c.getValue();
    }

    byte[] build() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(new byte[64], 0, 64);
        List<long[]> placed = new ArrayList<>(); // offset per section, in order
        for (Rec r : recs) {
            for (Sec s : r.secs) {
                while (out.size() % 64 != 0) {
                    out.write(0);
                }
                placed.add(new long[] {s.forcedOffset != null ? s.forcedOffset : out.size()});
                out.write(s.payload, 0, s.payload.length);
            }
        }
        ByteBuffer t = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        int si = 0;
        for (Rec r : recs) {
            byte[] name = r.name.getBytes(StandardCharsets.UTF_8);
            t.putShort((short) name.length).put(name).put((byte) r.method).put((byte) r.shape.length);
            for (int x : r.shape) {
                t.putInt(x);
            }
            t.putInt(r.k).putInt(r.d).put((byte) r.rows).put((byte) r.stages).putInt(r.rank).put((byte) r.bits)
                    .put((byte) r.secs.size());
            for (Sec s : r.secs) {
                t.put((byte) s.role).put((byte) s.dtype).put((byte) s.dims.length).put((byte) s.reserved);
                for (int i = 0; i < 4; i++) {
                    t.putInt(i < s.dims.length ? s.dims[i] : s.unusedDim);
                }
                t.putLong(placed.get(si++)[0]).putLong(s.payload.length).putInt((int) crc(s.payload, 0, s.payload.length));
            }
        }
        t.put(tableExtra);
        byte[] table = new byte[t.position() + 4];
        t.flip();
        t.get(table, 0, table.length - 4);
        ByteBuffer.wrap(table).order(ByteOrder.LITTLE_ENDIAN).putInt(table.length - 4, (int) crc(table, 0, table.length - 4));
        long tableOff = out.size();
        out.write(table, 0, table.length);
        byte[] meta = metadata.getBytes(StandardCharsets.UTF_8);
        long metaOff = out.size();
        out.write(meta, 0, meta.length);
        byte[] file = out.toByteArray();
        ByteBuffer h = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        h.put(new byte[] {0x56, 0x51, 0x4D, 0}).putShort((short) major).putShort((short) minor).putInt(64)
                .putInt(recs.size()).putLong(metaOff).putLong(meta.length).putLong(tableOff).putLong(table.length)
                .putLong(file.length).putInt((int) crc(meta, 0, meta.length));
        h.putInt(60, (int) crc(file, 0, 60));
        return file;
    }
}
