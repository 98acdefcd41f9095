package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * Reads a .vqm file exactly as docs/FORMAT.md (version 1.x) defines it. Every offset and length
 * is checked against the file before it is used; every region's crc32 is checked; the sections
 * of each tensor must be exactly those its method decodes. The checks run in the order of the
 * Python reader (vqexport/formats/vqm.py) so that both report the same kind of error.
 */
public final class VqmReader {
    static final byte[] MAGIC = {0x56, 0x51, 0x4D, 0x00};
    static final int HEADER_SIZE = 64;
    static final int SECTION_SIZE = 40;

    private final byte[] data;
    private final String name;
    private final ByteBuffer buf;
    /** [start, end) of every region, for the overlap check. */
    private final List<long[]> regions = new ArrayList<long[]>();

    private VqmReader(byte[] data, String name) {
        this.data = data;
        this.name = name;
        this.buf = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Reads and parses a whole file. */
    public static VqmFile read(File file) throws IOException {
        long len = file.length();
        if (!file.isFile()) {
            throw new VqmException(Kind.NOT_VQM, file.getPath(), "no such file");
        }
        if (len > Integer.MAX_VALUE - 16) {
            throw new VqmException(Kind.INVALID, file.getPath(), "larger than 2 GiB, which this reader does not map");
        }
        byte[] bytes = new byte[(int) len];
        InputStream in = new FileInputStream(file);
        try {
            int off = 0;
            while (off < bytes.length) {
                int r = in.read(bytes, off, bytes.length - off);
                if (r < 0) {
                    break;
                }
                off += r;
            }
        } finally {
            in.close();
        }
        return parse(bytes, file.getPath());
    }

    /** Parses a .vqm held in memory; {@code name} is used in error messages. */
    public static VqmFile parse(byte[] data, String name) throws VqmException {
        return new VqmReader(data, name).parse();
    }

    private VqmException fail(Kind kind, String msg) {
        return new VqmException(kind, name, msg);
    }

    private static long crc(byte[] d, long off, long len) {
        CRC32 c = new CRC32();
        c.update(d, (int) off, (int) len);
        return c.getValue();
    }

    /** An unsigned u64 as a long; values past 2^62 cannot be inside any file, so they fail. */
    private long u64(int at, String what) throws VqmException {
        long v = buf.getLong(at);
        if (v < 0 || v > (1L << 62)) {
            throw fail(Kind.BOUNDS, what + " " + Long.toUnsignedString(v) + " lies outside the " + data.length + "-byte file");
        }
        return v;
    }

    private long u32(int at) {
        return buf.getInt(at) & 0xFFFFFFFFL;
    }

    private VqmFile parse() throws VqmException {
        long size = data.length;
        if (size < HEADER_SIZE || data[0] != MAGIC[0] || data[1] != MAGIC[1] || data[2] != MAGIC[2] || data[3] != MAGIC[3]) {
            throw fail(Kind.NOT_VQM, "not a .vqm file (bad magic)");
        }
        int major = buf.getShort(4) & 0xFFFF;
        int minor = buf.getShort(6) & 0xFFFF;
        if (major != 1) {
            throw fail(Kind.VERSION, "unsupported .vqm version " + major + "." + minor + " (this reader reads 1.x)");
        }
        if (crc(data, 0, 60) != u32(60)) {
            throw fail(Kind.CHECKSUM, "checksum mismatch in header");
        }
        long fileSize = u64(48, "file_size");
        if (fileSize != size) {
            throw fail(Kind.TRUNCATED, "truncated or padded: header says " + fileSize + " bytes, file has " + size);
        }
        if (u32(8) != HEADER_SIZE) {
            throw fail(Kind.INVALID, "header size " + u32(8) + ", expected " + HEADER_SIZE);
        }
        long nTensors = u32(12);
        long metaOff = u64(16, "meta_offset");
        long metaLen = u64(24, "meta_length");
        long tableOff = u64(32, "table_offset");
        long tableLen = u64(40, "table_length");
        checkRegion("metadata", metaOff, metaLen);
        checkRegion("tensor table", tableOff, tableLen);
        regions.add(new long[] {0, HEADER_SIZE});
        regions.add(new long[] {metaOff, metaOff + metaLen});
        regions.add(new long[] {tableOff, tableOff + tableLen});
        if (crc(data, metaOff, metaLen) != u32(56)) {
            throw fail(Kind.CHECKSUM, "checksum mismatch in metadata");
        }
        Map<String, Object> meta;
        try {
            String text = Charset.forName("UTF-8").newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data, (int) metaOff, (int) metaLen)).toString();
            meta = Json.parseObject(text);
        } catch (CharacterCodingException e) {
            throw fail(Kind.INVALID, "metadata is not valid UTF-8");
        } catch (IllegalArgumentException e) {
            throw fail(Kind.INVALID, "metadata is not valid JSON (" + e.getMessage() + ")");
        }
        if (tableLen < 4) {
            throw fail(Kind.INVALID, "tensor table too short");
        }
        long recordsEnd = tableOff + tableLen - 4;
        if (crc(data, tableOff, tableLen - 4) != u32((int) recordsEnd)) {
            throw fail(Kind.CHECKSUM, "checksum mismatch in tensor table");
        }
        RecordParser rp = new RecordParser(this, (int) tableOff, (int) recordsEnd);
        List<VqmTensor> tensors = new ArrayList<VqmTensor>();
        for (long i = 0; i < nTensors; i++) {
            tensors.add(rp.next());
        }
        if (rp.pos != recordsEnd) {
            throw fail(Kind.INVALID, "tensor table has " + (recordsEnd - rp.pos) + " bytes after its " + nTensors + " records");
        }
        checkOverlaps();
        return new VqmFile(name, minor, meta, tensors, size);
    }

    private void checkRegion(String what, long off, long len) throws VqmException {
        if (off < HEADER_SIZE || off + len > data.length) {
            throw fail(Kind.BOUNDS, what + " at " + off + "+" + len + " lies outside the " + data.length + "-byte file");
        }
    }

    /** FORMAT.md: regions must not overlap (the Python reader checks the same). */
    private void checkOverlaps() throws VqmException {
        List<long[]> r = new ArrayList<long[]>();
        for (long[] x : regions) {
            if (x[1] > x[0]) {
                r.add(x);
            }
        }
        Collections.sort(r, new Comparator<long[]>() {
            @Override
            public int compare(long[] a, long[] b) {
                return Long.compare(a[0], b[0]);
            }
        });
        for (int i = 1; i < r.size(); i++) {
            if (r.get(i)[0] < r.get(i - 1)[1]) {
                throw fail(Kind.BOUNDS, "regions at " + r.get(i - 1)[0] + " and " + r.get(i)[0] + " overlap");
            }
        }
    }

    /** Walks the records of the tensor table. */
    private static final class RecordParser {
        private final VqmReader rd;
        private final int end;
        int pos;

        RecordParser(VqmReader rd, int start, int end) {
            this.rd = rd;
            this.pos = start;
            this.end = end;
        }

        private void need(int n) throws VqmException {
            if (pos + n > end) {
                throw rd.fail(Kind.INVALID, "tensor table ends inside a record");
            }
        }

        private int u8() throws VqmException {
            need(1);
            return rd.data[pos++] & 0xFF;
        }

        private int u16() throws VqmException {
            need(2);
            int v = rd.buf.getShort(pos) & 0xFFFF;
            pos += 2;
            return v;
        }

        private long u32() throws VqmException {
            need(4);
            long v = rd.buf.getInt(pos) & 0xFFFFFFFFL;
            pos += 4;
            return v;
        }

        private long u64() throws VqmException {
            need(8);
            long v = rd.buf.getLong(pos);
            pos += 8;
            return v;
        }

        private static int toInt(long v) {
            return v > Integer.MAX_VALUE ? -1 : (int) v;
        }

        VqmTensor next() throws VqmException {
            int nlen = u16();
            if (pos + nlen > end) {
                throw rd.fail(Kind.INVALID, "tensor table ends inside a name");
            }
            String tname;
            try {
                tname = Charset.forName("UTF-8").newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(rd.data, pos, nlen)).toString();
            } catch (CharacterCodingException e) {
                throw rd.fail(Kind.INVALID, "a tensor name is not UTF-8");
            }
            pos += nlen;
            int method = u8();
            int ndim = u8();
            if (method >= VqmTensor.METHODS.length) {
                throw rd.fail(Kind.INVALID, tname + ": unknown method code " + method);
            }
            if (ndim > 8) {
                throw rd.fail(Kind.INVALID, tname + ": ndim " + ndim + " > 8");
            }
            int[] shape = new int[ndim];
            for (int i = 0; i < ndim; i++) {
                shape[i] = toInt(u32());
                if (shape[i] < 0) {
                    throw rd.fail(Kind.INVALID, tname + ": dimension larger than 2^31");
                }
            }
            long k = u32();
            long d = u32();
            int rows = u8();
            int stages = u8();
            long rank = u32();
            int bits = u8();
            int nsec = u8();
            if (method != 0 && method != 5 && (bits < 1 || bits > 16)) {
                throw rd.fail(Kind.INVALID, tname + ": index width " + bits + " bits is outside 1..16");
            }
            if (k > Integer.MAX_VALUE || d > Integer.MAX_VALUE || rank > Integer.MAX_VALUE) {
                throw rd.fail(Kind.INVALID, tname + ": k, d or rank larger than 2^31");
            }
            LinkedHashMap<String, VqmTensor.Section> sections = new LinkedHashMap<String, VqmTensor.Section>();
            for (int s = 0; s < nsec; s++) {
                VqmTensor.Section sec = section(tname, bits);
                if (sections.put(sec.roleName(), sec) != null) {
                    throw rd.fail(Kind.INVALID, tname + ": two " + sec.roleName() + " sections");
                }
            }
            VqmTensor t = new VqmTensor(rd.data, tname, method, shape, (int) k, (int) d, rows != 0, stages,
                    (int) rank, bits, sections);
            VqmLayout.check(t, rd.name);
            return t;
        }

        private VqmTensor.Section section(String tname, int bits) throws VqmException {
            need(SECTION_SIZE);
            int role = u8();
            int dtype = u8();
            int sdim = u8();
            u8(); // reserved
            long[] dims4 = {u32(), u32(), u32(), u32()};
            long offset = u64();
            long length = u64();
            long crc = u32();
            if (role >= VqmTensor.ROLES.length || dtype >= VqmTensor.DTYPES.length || sdim > 4) {
                throw rd.fail(Kind.INVALID, tname + ": bad section descriptor (role " + role + ", dtype " + dtype + ", ndim " + sdim + ")");
            }
            String where = tname + "/" + VqmTensor.ROLES[role];
            int[] dims = new int[sdim];
            long count = 1;
            for (int i = 0; i < sdim; i++) {
                if (dims4[i] > Integer.MAX_VALUE) {
                    throw rd.fail(Kind.INVALID, where + ": dimension larger than 2^31");
                }
                dims[i] = (int) dims4[i];
                count *= dims4[i];
                if (count > (1L << 40)) {
                    throw rd.fail(Kind.INVALID, where + ": " + count + "+ elements cannot fit in a file");
                }
            }
            long expect = dtype == 5 ? Bits.packedBytes(count, bits) : count * VqmTensor.ITEMSIZE[dtype];
            if (length != expect) {
                throw rd.fail(Kind.INVALID, where + ": " + Long.toUnsignedString(length) + " bytes where its dims need " + expect);
            }
            if (offset < 0 || offset % 64 != 0 || offset < HEADER_SIZE || offset + length > rd.data.length) {
                throw rd.fail(Kind.BOUNDS, where + ": section at " + Long.toUnsignedString(offset) + "+" + length
                        + " is misaligned or outside the file");
            }
            if (VqmReader.crc(rd.data, offset, length) != crc) {
                throw rd.fail(Kind.CHECKSUM, "checksum mismatch in section " + where);
            }
            rd.regions.add(new long[] {offset, offset + length});
            return new VqmTensor.Section(role, dtype, dims, offset, length, count);
        }
    }
}
