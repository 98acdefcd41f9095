package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32;

/**
 * Reads a .vqm file exactly as docs/FORMAT.md (versions 1.x to 3.x) defines it. Every offset and length
 * is checked against the file before it is used; every region's crc32 is checked; the sections
 * of each tensor must be exactly those its method decodes; the decoded size is capped
 * ({@link VqmLimits}) before anything is decoded. The checks run in the order of the Python
 * reader (vqexport/formats/vqm.py) so that both report the same kind of error.
 *
 * <p>The file is read in place from a ByteBuffer (a memory map or a slice of a .tflite), so
 * reading costs no heap beyond the metadata; tensors decode from it on demand.
 */
public final class VqmReader {
    static final byte[] MAGIC = {0x56, 0x51, 0x4D, 0x00};
    static final int HEADER_SIZE = 64;
    static final int SECTION_SIZE = 40;
    private static final Charset UTF8 = Charset.forName("UTF-8");

    private final ByteBuffer buf;
    private final int size;
    private final String name;
    private final VqmLimits limits;
    /** [start, end) of every region, for the overlap check. */
    private final List<long[]> regions = new ArrayList<long[]>();
    private long decodedBytes;
    private int major;

    private VqmReader(ByteBuffer data, String name, VqmLimits limits) {
        this.buf = data.slice().order(ByteOrder.LITTLE_ENDIAN);
        this.size = buf.capacity();
        this.name = name;
        this.limits = limits;
    }

    /** Reads and parses a whole file with the default limits. */
    public static VqmFile read(File file) throws IOException {
        return read(file, VqmLimits.DEFAULT);
    }

    /** Maps the file read-only (its bytes stay off the Java heap) and parses it. */
    public static VqmFile read(File file, VqmLimits limits) throws IOException {
        if (!file.isFile()) {
            throw new VqmException(Kind.NOT_VQM, file.getPath(), "no such file");
        }
        RandomAccessFile raf = new RandomAccessFile(file, "r");
        try {
            long len = raf.length();
            if (len > Integer.MAX_VALUE - 16) {
                throw new VqmException(Kind.INVALID, file.getPath(), "larger than 2 GiB, which this reader does not map");
            }
            ByteBuffer map = raf.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, len);
            return parse(map, file.getPath(), limits);
        } finally {
            raf.close(); // the mapping stays valid after the channel closes
        }
    }

    /** Parses a .vqm held in memory; {@code name} is used in error messages. */
    public static VqmFile parse(byte[] data, String name) throws VqmException {
        return parse(ByteBuffer.wrap(data), name, VqmLimits.DEFAULT);
    }

    /** Parses the remaining bytes of {@code data} (not moved) as one .vqm file. */
    public static VqmFile parse(ByteBuffer data, String name, VqmLimits limits) throws VqmException {
        return new VqmReader(data, name, limits).parse();
    }

    VqmException fail(Kind kind, String msg) {
        return new VqmException(kind, name, msg);
    }

    /** crc32 of bytes [off, off+len) of b, through a small scratch array when b has none. */
    static long crc(ByteBuffer b, long off, long len) {
        CRC32 c = new CRC32();
        if (b.hasArray()) {
            c.update(b.array(), b.arrayOffset() + (int) off, (int) len);
            return c.getValue();
        }
        byte[] scratch = new byte[(int) Math.min(len, 1 << 16)];
        ByteBuffer d = b.duplicate();
        d.clear();
        d.position((int) off);
        long left = len;
        while (left > 0) {
            int n = (int) Math.min(left, scratch.length);
            d.get(scratch, 0, n);
            c.update(scratch, 0, n);
            left -= n;
        }
        return c.getValue();
    }

    /** An unsigned u64 as a long; values past 2^62 cannot be inside any file, so they fail. */
    private long u64(int at, String what) throws VqmException {
        long v = buf.getLong(at);
        if (v < 0 || v > (1L << 62)) {
            throw fail(Kind.BOUNDS, what + " " + Long.toUnsignedString(v) + " lies outside the " + size + "-byte file");
        }
        return v;
    }

    private long u32(int at) {
        return buf.getInt(at) & 0xFFFFFFFFL;
    }

    private VqmFile parse() throws VqmException {
        if (size < HEADER_SIZE || buf.get(0) != MAGIC[0] || buf.get(1) != MAGIC[1] || buf.get(2) != MAGIC[2]
                || buf.get(3) != MAGIC[3]) {
            throw fail(Kind.NOT_VQM, "not a .vqm file (bad magic)");
        }
        major = buf.getShort(4) & 0xFFFF;
        int minor = buf.getShort(6) & 0xFFFF;
        if (major < 1 || major > 3) {
            throw fail(Kind.VERSION, "unsupported .vqm version " + major + "." + minor + " (this reader reads 1.x to 3.x)");
        }
        if (crc(buf, 0, 60) != u32(60)) {
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
        if (crc(buf, metaOff, metaLen) != u32(56)) {
            throw fail(Kind.CHECKSUM, "checksum mismatch in metadata");
        }
        Map<String, Object> meta = metadata(metaOff, metaLen);
        if (tableLen < 4) {
            throw fail(Kind.INVALID, "tensor table too short");
        }
        long recordsEnd = tableOff + tableLen - 4;
        if (crc(buf, tableOff, tableLen - 4) != u32((int) recordsEnd)) {
            throw fail(Kind.CHECKSUM, "checksum mismatch in tensor table");
        }
        VqmRecords rp = new VqmRecords(this, buf, (int) tableOff, (int) recordsEnd);
        List<VqmTensor> tensors = new ArrayList<VqmTensor>();
        Set<String> names = new HashSet<String>();
        for (long i = 0; i < nTensors; i++) {
            VqmTensor t = rp.next();
            if (major == 1 && t.needsV2()) {
                throw fail(Kind.INVALID, t.name + ": a version 1 file holds only 2-D, one-codebook tensors of methods 1 to 5");
            }
            if (!names.add(t.name)) {
                throw fail(Kind.INVALID, "two tensors named " + t.name);
            }
            tensors.add(t);
        }
        if (rp.pos != recordsEnd) {
            throw fail(Kind.INVALID, "tensor table has " + (recordsEnd - rp.pos) + " bytes after its " + nTensors + " records");
        }
        checkOverlaps();
        checkGaps();
        VqmMetadata.checkNames(meta, tensors, this);
        return new VqmFile(name, major, minor, meta, tensors, size);
    }

    private Map<String, Object> metadata(long off, long len) throws VqmException {
        if (len > limits.maxMetadataBytes) {
            throw fail(Kind.INVALID, "metadata is " + len + " bytes, over the cap of " + limits.maxMetadataBytes);
        }
        byte[] raw = new byte[(int) len];
        ByteBuffer d = buf.duplicate();
        d.clear();
        d.position((int) off);
        d.get(raw);
        String text;
        try {
            text = UTF8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(raw)).toString();
        } catch (CharacterCodingException e) {
            throw fail(Kind.INVALID, "metadata is not valid UTF-8");
        }
        try {
            Object v = Json.parseWithLongs(text, limits.maxJsonDepth);
            if (!(v instanceof Map)) {
                throw fail(Kind.INVALID, "metadata is " + VqmMetadata.describe(v) + ", not a JSON object");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> m = (Map<String, Object>) v;
            VqmMetadata.checkTypes(m, this);
            return m;
        } catch (IllegalArgumentException e) {
            throw fail(Kind.INVALID, "metadata is not valid JSON (" + e.getMessage() + ")");
        }
    }

    /** Counts a tensor's decoded float32 bytes against the limits, before any of it is decoded. */
    void account(String tensor, long numel) throws VqmException {
        long bytes;
        try {
            bytes = Math.multiplyExact(numel, 4L);
            decodedBytes = Math.addExact(decodedBytes, bytes);
        } catch (ArithmeticException e) {
            throw fail(Kind.INVALID, tensor + ": decoded size overflows 64 bits");
        }
        if (decodedBytes > limits.allowedFor(size)) {
            throw fail(Kind.INVALID, "the file " + limits.overMessage(decodedBytes, size) + " at tensor " + tensor);
        }
    }

    String name() {
        return name;
    }

    /** The file's major version: what it may hold (FORMAT.md "Versions"). */
    int major() {
        return major;
    }

    void addRegion(long start, long end) {
        regions.add(new long[] {start, end});
    }

    private void checkRegion(String what, long off, long len) throws VqmException {
        if (off < HEADER_SIZE || off + len > size) {
            throw fail(Kind.BOUNDS, what + " at " + off + "+" + len + " lies outside the " + size + "-byte file");
        }
    }

    /** FORMAT.md: every byte after the header that no region covers is zero padding. */
    private void checkGaps() throws VqmException {
        List<long[]> r = sortedRegions();
        long pos = HEADER_SIZE;
        r.add(new long[] {size, size});
        for (long[] x : r) {
            for (long i = pos; i < x[0]; i++) {
                if (buf.get((int) i) != 0) {
                    throw fail(Kind.INVALID, "bytes " + pos + ".." + (x[0] - 1) + " between regions are not zero padding");
                }
            }
            pos = Math.max(pos, x[1]);
        }
    }

    /** The non-empty regions by start. */
    private List<long[]> sortedRegions() {
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
        return r;
    }

    /** FORMAT.md: regions must not overlap (the Python reader checks the same). */
    private void checkOverlaps() throws VqmException {
        List<long[]> r = sortedRegions();
        for (int i = 1; i < r.size(); i++) {
            if (r.get(i)[0] < r.get(i - 1)[1]) {
                throw fail(Kind.BOUNDS, "regions at " + r.get(i - 1)[0] + " and " + r.get(i)[0] + " overlap");
            }
        }
    }
}
