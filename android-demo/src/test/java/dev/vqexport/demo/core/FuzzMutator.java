package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.CRC32;

/**
 * Mutations for the reader fuzzers: byte-level damage anywhere, and structure-aware damage to a
 * .vqm (table fields, metadata JSON) followed by re-computing every checksum, so that the damage
 * reaches the checks behind the crc32s instead of stopping at the first one.
 */
final class FuzzMutator {
    private static final long[] INTERESTING = {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 255, 256,
        0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFFL, 0x80000000L, 0xFFFFFFFFL, 0x100000000L, 1L << 40, 1L << 62,
        Long.MAX_VALUE, -1L, Long.MIN_VALUE};
    private static final String[] JSON = {"\"x\"", "[]", "null", "5", "{\"skipped\": 5}", "{\"skipped\": {\"nosuch\": \"x\"}}",
        "{\"layers\": {\"nosuch\": {}}}", "{\"input\": {\"shape\": [1, -1]}}", "{\"labels\": [1]}", "{\"input\": 3}",
        "{\"config\": {\"k\": 1e400}}", "{\"source\": {\"arch\": \"os:abort\"}}", "{}", "{\"a\": \"\\ud800\"}",
        "{\"slots\": [{\"buffer\": 1e30, \"layer\": \"x\", \"layout\": \"W\", \"shape\": [1, 1]}], \"decode\": \"load\"}",
        "{\"decode\": \"load\", \"slots\": []}", "{\"decode\": \"load\", \"slots\": [5]}", "{\"decode\": \"load\"}",
        "{\"decode\": \"load\", \"slots\": [{\"buffer\": -1, \"layer\": \"0.weight\", \"layout\": \"WT\", \"shape\": [2]}]}"};

    private static final String JSON_CHARS = "{}[]\",:0123456789-.eEtrufalsn \\x'/#";

    private final Random rnd;

    FuzzMutator(long seed) {
        rnd = new Random(seed);
    }

    Random random() {
        return rnd;
    }

    /** One to four byte-level mutations of a copy of {@code in}. */
    byte[] bytes(byte[] in) {
        byte[] b = in.clone();
        int n = 1 + rnd.nextInt(4);
        for (int i = 0; i < n; i++) {
            b = once(b);
        }
        return b;
    }

    private byte[] once(byte[] b) {
        if (b.length == 0) {
            return new byte[] {(byte) rnd.nextInt()};
        }
        int at = rnd.nextInt(b.length);
        switch (rnd.nextInt(8)) {
            case 0:
                b[at] ^= (byte) (1 << rnd.nextInt(8));
                return b;
            case 1:
                b[at] = (byte) rnd.nextInt();
                return b;
            case 2:
                putLe(b, at, new int[] {1, 2, 4, 8}[rnd.nextInt(4)], INTERESTING[rnd.nextInt(INTERESTING.length)]);
                return b;
            case 3:
                putLe(b, at, 4, INTERESTING[rnd.nextInt(INTERESTING.length)] + rnd.nextInt(3) - 1);
                return b;
            case 4:
                return Arrays.copyOf(b, rnd.nextInt(b.length + 1)); // truncate
            case 5:
                return Arrays.copyOf(b, b.length + 1 + rnd.nextInt(128)); // pad with zeros
            case 6: { // copy a run of bytes over another place
                int from = rnd.nextInt(b.length);
                int len = Math.min(1 + rnd.nextInt(64), Math.min(b.length - from, b.length - at));
                System.arraycopy(b, from, b, at, len);
                return b;
            }
            default:
                putLe(b, at, 8, INTERESTING[rnd.nextInt(INTERESTING.length)]);
                return b;
        }
    }

    private static void putLe(byte[] b, int at, int width, long v) {
        for (int i = 0; i < width && at + i < b.length; i++) {
            b[at + i] = (byte) (v >>> (8 * i));
        }
    }

    /** A .vqm mutation that gets past the checksums: table fields, metadata or payload, crcs fixed. */
    byte[] vqm(byte[] in) {
        switch (rnd.nextInt(5)) {
            case 0:
                return bytes(in); // crcs stay stale: the checksum paths
            case 1:
                return fixCrcs(bytes(in));
            case 2: { // damage inside the tensor table
                byte[] b = in.clone();
                ByteBuffer h = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
                long off = h.getLong(32);
                long len = h.getLong(40);
                if (off > 0 && len > 4 && off + len <= b.length) {
                    int n = 1 + rnd.nextInt(3);
                    for (int i = 0; i < n; i++) {
                        int at = (int) (off + rnd.nextInt((int) len - 4));
                        if (rnd.nextBoolean()) {
                            b[at] = (byte) INTERESTING[rnd.nextInt(INTERESTING.length)];
                        } else {
                            putLe(b, at, 4, INTERESTING[rnd.nextInt(INTERESTING.length)]);
                        }
                    }
                }
                return fixCrcs(b);
            }
            case 3:
                return withMetadata(in, metadataText(in));
            default: { // damage a payload (codebook values, indices >= k)
                byte[] b = in.clone();
                int at = 64 + rnd.nextInt(Math.max(1, b.length - 64));
                if (at < b.length) {
                    b[at] = (byte) rnd.nextInt();
                }
                return fixCrcs(b);
            }
        }
    }

    /**
     * A .tflite mutation: byte damage anywhere (the FlatBuffer), or length-preserving damage to
     * the embedded .vqm or to the "vqexport" JSON, whose places in the file are given.
     */
    byte[] tflite(byte[] in, int vqmAt, int vqmLen, int jsonAt, int jsonLen) {
        int pick = rnd.nextInt(3);
        if (pick == 0 || vqmAt < 0 || jsonAt < 0) {
            return bytes(in);
        }
        byte[] b = in.clone();
        if (pick == 1) {
            byte[] inner = vqm(Arrays.copyOfRange(in, vqmAt, vqmAt + vqmLen));
            System.arraycopy(inner, 0, b, vqmAt, Math.min(inner.length, vqmLen));
            return b;
        }
        String text = rnd.nextBoolean() ? JSON[rnd.nextInt(JSON.length)]
                : new String(Arrays.copyOfRange(in, jsonAt, jsonAt + jsonLen), StandardCharsets.ISO_8859_1);
        byte[] t = text.getBytes(StandardCharsets.ISO_8859_1);
        if (t.length > jsonLen) {
            return bytes(in);
        }
        t = Arrays.copyOf(t, jsonLen);
        Arrays.fill(t, text.length(), jsonLen, (byte) ' ');
        int n = rnd.nextInt(4);
        for (int i = 0; i < n; i++) {
            t[rnd.nextInt(t.length)] = (byte) JSON_CHARS.charAt(rnd.nextInt(JSON_CHARS.length()));
        }
        System.arraycopy(t, 0, b, jsonAt, jsonLen);
        return b;
    }

    private String metadataText(byte[] in) {
        if (rnd.nextInt(3) == 0) {
            return JSON[rnd.nextInt(JSON.length)];
        }
        if (rnd.nextInt(8) == 0) {
            StringBuilder s = new StringBuilder();
            int depth = rnd.nextBoolean() ? 60 + rnd.nextInt(10) : 1 + rnd.nextInt(100_000);
            for (int i = 0; i < depth; i++) {
                s.append(rnd.nextBoolean() ? "[" : "{\"a\":");
            }
            return s.toString();
        }
        ByteBuffer h = ByteBuffer.wrap(in).order(ByteOrder.LITTLE_ENDIAN);
        long off = in.length >= 64 ? h.getLong(16) : 0;
        long len = in.length >= 64 ? h.getLong(24) : 0;
        if (off < 64 || len < 0 || off + len > in.length) {
            return "{}";
        }
        byte[] text = Arrays.copyOfRange(in, (int) off, (int) (off + len));
        if (text.length > 0) {
            int n = 1 + rnd.nextInt(3);
            for (int i = 0; i < n; i++) {
                text[rnd.nextInt(text.length)] = (byte) JSON_CHARS.charAt(rnd.nextInt(JSON_CHARS.length()));
            }
        }
        return new String(text, StandardCharsets.ISO_8859_1);
    }

    /** The file with its metadata replaced by {@code json}: placed last, header and crcs fixed. */
    static byte[] withMetadata(byte[] in, String json) {
        if (in.length < 64) {
            return in.clone();
        }
        ByteBuffer h = ByteBuffer.wrap(in).order(ByteOrder.LITTLE_ENDIAN);
        long off = h.getLong(16);
        long len = h.getLong(24);
        if (off < 64 || len < 0 || off + len != in.length) {
            return in.clone(); // only when the metadata is last, as the writer puts it
        }
        byte[] meta = json.getBytes(StandardCharsets.UTF_8);
        byte[] b = Arrays.copyOf(in, (int) off + meta.length);
        System.arraycopy(meta, 0, b, (int) off, meta.length);
        ByteBuffer o = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        o.putLong(24, meta.length);
        o.putLong(48, b.length);
        return fixCrcs(b);
    }

    private static int crc(byte[] b, long off, long len) {
        CRC32 c = new CRC32();
        c.update(b, (int) off, (int) len);
        return (int) c.getValue();
    }

    /** Recomputes every crc32 of a .vqm that can be located: sections, table, metadata, header. */
    static byte[] fixCrcs(byte[] b) {
        if (b.length < 64) {
            return b;
        }
        ByteBuffer h = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        long n = h.getInt(12) & 0xFFFFFFFFL;
        long metaOff = h.getLong(16);
        long metaLen = h.getLong(24);
        long tableOff = h.getLong(32);
        long tableLen = h.getLong(40);
        if (tableOff >= 64 && tableLen >= 4 && tableLen <= b.length - tableOff) {
            int pos = (int) tableOff;
            int end = (int) (tableOff + tableLen - 4);
            try {
                for (long r = 0; r < n && pos < end; r++) {
                    int nlen = h.getShort(pos) & 0xFFFF;
                    pos += 2 + nlen;
                    int ndim = b[pos + 1] & 0xFF;
                    pos += 2 + 4 * ndim + 4 + 4 + 1 + 1 + 4 + 1;
                    int nsec = b[pos] & 0xFF;
                    pos += 1;
                    for (int s = 0; s < nsec && pos + 40 <= end; s++, pos += 40) {
                        long off = h.getLong(pos + 20);
                        long len = h.getLong(pos + 28);
                        if (off >= 0 && len >= 0 && off <= b.length - len) {
                            h.putInt(pos + 36, crc(b, off, len));
                        }
                    }
                }
            } catch (IndexOutOfBoundsException e) {
                // a damaged table: the crcs found so far are fixed, the reader reports the rest
            }
            h.putInt(end, crc(b, tableOff, tableLen - 4));
        }
        if (metaOff >= 64 && metaLen >= 0 && metaLen <= b.length - metaOff) {
            h.putInt(56, crc(b, metaOff, metaLen));
        }
        h.putInt(60, crc(b, 0, 60));
        return b;
    }
}
