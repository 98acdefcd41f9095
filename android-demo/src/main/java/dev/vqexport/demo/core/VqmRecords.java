package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.util.LinkedHashMap;

/**
 * Walks the records of a .vqm tensor table (FORMAT.md "Tensor table"). Every field is checked
 * against what the format allows before it is used: fields a method does not read must be zero,
 * dimension products must fit in 64 bits, and each tensor's decoded size is counted against the
 * reader's limits before its sections are looked at.
 */
final class VqmRecords {
    private static final Charset UTF8 = Charset.forName("UTF-8");
    private final VqmReader rd;
    private final ByteBuffer buf;
    private final int end;
    int pos;

    VqmRecords(VqmReader rd, ByteBuffer buf, int start, int end) {
        this.rd = rd;
        this.buf = buf;
        this.pos = start;
        this.end = end;
    }

    private void need(int n) throws VqmException {
        if (n > end - pos) {
            throw rd.fail(Kind.INVALID, "tensor table ends inside a record");
        }
    }

    private int u8() throws VqmException {
        need(1);
        return buf.get(pos++) & 0xFF;
    }

    private int u16() throws VqmException {
        need(2);
        int v = buf.getShort(pos) & 0xFFFF;
        pos += 2;
        return v;
    }

    private long u32() throws VqmException {
        need(4);
        long v = buf.getInt(pos) & 0xFFFFFFFFL;
        pos += 4;
        return v;
    }

    private long u64() throws VqmException {
        need(8);
        long v = buf.getLong(pos);
        pos += 8;
        return v;
    }

    VqmTensor next() throws VqmException {
        int nlen = u16();
        if (nlen > end - pos) {
            throw rd.fail(Kind.INVALID, "tensor table ends inside a name");
        }
        String tname;
        try {
            ByteBuffer nb = buf.duplicate();
            nb.clear();
            nb.position(pos).limit(pos + nlen);
            tname = UTF8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(nb).toString();
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
        long numel = 1;
        for (int i = 0; i < ndim; i++) {
            long v = u32();
            if (v > Integer.MAX_VALUE) {
                throw rd.fail(Kind.INVALID, tname + ": dimension " + v + " is larger than 2^31 - 1");
            }
            shape[i] = (int) v;
            numel = product(numel, v, tname + ": shape");
        }
        long k = u32();
        long d = u32();
        int rows = u8();
        int stages = u8();
        long rank = u32();
        int bits = u8();
        int nsec = u8();
        String m = VqmTensor.METHODS[method];
        if (VqmTensor.reads(method, "bits") && (bits < 1 || bits > 16)) {
            throw rd.fail(Kind.INVALID, tname + ": index width " + bits + " bits is outside 1..16");
        }
        if (k > Integer.MAX_VALUE || d > Integer.MAX_VALUE || rank > Integer.MAX_VALUE) {
            throw rd.fail(Kind.INVALID, tname + ": k, d or rank larger than 2^31");
        }
        if (rows > 1) {
            throw rd.fail(Kind.INVALID, tname + ": rows is " + rows + ", must be 0 or 1");
        }
        // FORMAT.md: each field is read by the methods whose TABLE lists it and is 0 for the others.
        unused(tname, m, "k", k, method);
        unused(tname, m, "d", d, method);
        unused(tname, m, "rows", rows, method);
        unused(tname, m, "stages", stages, method);
        unused(tname, m, "rank", rank, method);
        unused(tname, m, "bits", bits, method);
        if (method != 0 && (ndim < 2 || min(shape) < 1)) {
            throw rd.fail(Kind.INVALID, tname + ": a " + m + " tensor must have 2 or more dimensions, none 0, table says "
                    + java.util.Arrays.toString(shape));
        }
        if (VqmTensor.reads(method, "k") && k < 1) {
            throw rd.fail(Kind.INVALID, tname + ": " + m + " with k=0");
        }
        rd.account(tname, numel);
        LinkedHashMap<String, VqmTensor.Section> sections = new LinkedHashMap<String, VqmTensor.Section>();
        for (int s = 0; s < nsec; s++) {
            VqmTensor.Section sec = section(tname, bits);
            if (sections.put(sec.roleName(), sec) != null) {
                throw rd.fail(Kind.INVALID, tname + ": two " + sec.roleName() + " sections");
            }
        }
        // Grouped codebooks (FORMAT.md 2.0): a codebook section of one more dimension than the
        // method's own has the group count as its leading dim; VqmLayout checks that it divides m.
        VqmTensor.Section cb = sections.get("codebook");
        int groups = cb != null && method != 0 && cb.dims.length == VqmTensor.CODEBOOK_NDIM[method] + 1 ? cb.dims[0] : 1;
        VqmTensor t = new VqmTensor(buf, tname, method, shape, (int) k, (int) d, rows != 0, stages,
                (int) rank, bits, groups, sections);
        VqmLayout.check(t, rd.name());
        return t;
    }

    private static int min(int[] shape) {
        int v = Integer.MAX_VALUE;
        for (int x : shape) {
            v = Math.min(v, x);
        }
        return v;
    }

    private void unused(String tname, String m, String field, long v, int method) throws VqmException {
        if (v != 0 && !VqmTensor.reads(method, field)) {
            throw rd.fail(Kind.INVALID, tname + ": " + field + " is " + v + " but " + m + " does not use it (must be 0)");
        }
    }

    private long product(long a, long b, String what) throws VqmException {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            throw rd.fail(Kind.INVALID, what + ": the product of the dimensions overflows 64 bits");
        }
    }

    private VqmTensor.Section section(String tname, int bits) throws VqmException {
        need(VqmReader.SECTION_SIZE);
        int role = u8();
        int dtype = u8();
        int sdim = u8();
        int reserved = u8();
        long[] dims4 = {u32(), u32(), u32(), u32()};
        long offset = u64();
        long length = u64();
        long crc = u32();
        if (role >= VqmTensor.ROLES.length || dtype >= VqmTensor.DTYPES.length || sdim > 4) {
            throw rd.fail(Kind.INVALID, tname + ": bad section descriptor (role " + role + ", dtype " + dtype + ", ndim " + sdim + ")");
        }
        String where = tname + "/" + VqmTensor.ROLES[role];
        if (reserved != 0) {
            throw rd.fail(Kind.INVALID, where + ": reserved byte is " + reserved + ", must be 0");
        }
        int[] dims = new int[sdim];
        long count = 1;
        for (int i = 0; i < 4; i++) {
            if (i >= sdim) {
                if (dims4[i] != 0) {
                    throw rd.fail(Kind.INVALID, where + ": unused dimension " + i + " is " + dims4[i] + ", must be 0");
                }
                continue;
            }
            if (dims4[i] > Integer.MAX_VALUE) {
                throw rd.fail(Kind.INVALID, where + ": dimension larger than 2^31");
            }
            dims[i] = (int) dims4[i];
            count = product(count, dims4[i], where);
        }
        if (dtype == VqmTensor.HUFFMAN && (role != 2 || rd.major() < 3)) {
            throw rd.fail(Kind.INVALID, where + ": a huffman section is only for indices, in a version 3 file");
        }
        long expect;
        try {
            // A Huffman payload's length is its coded size: VqmHuffman checks it against its fields.
            expect = dtype == VqmTensor.HUFFMAN ? length
                    : dtype == VqmTensor.PACKED ? Math.addExact(Math.multiplyExact(count, (long) bits), 7) / 8
                    : Math.multiplyExact(count, (long) VqmTensor.ITEMSIZE[dtype]);
        } catch (ArithmeticException e) {
            throw rd.fail(Kind.INVALID, where + ": the section's size overflows 64 bits");
        }
        if (length != expect || length < 0) {
            throw rd.fail(Kind.INVALID, where + ": " + Long.toUnsignedString(length) + " bytes where its dims need " + expect);
        }
        if (offset < 0 || offset % 64 != 0 || offset < VqmReader.HEADER_SIZE || length > fileSize() - offset) {
            throw rd.fail(Kind.BOUNDS, where + ": section at " + Long.toUnsignedString(offset) + "+" + length
                    + " is misaligned or outside the file");
        }
        if (VqmReader.crc(buf, offset, length) != crc) {
            throw rd.fail(Kind.CHECKSUM, "checksum mismatch in section " + where);
        }
        int tail = (int) ((count * bits) % 8);
        if (dtype == 5 && tail != 0 && ((buf.get((int) (offset + length - 1)) & 0xFF) >>> tail) != 0) {
            throw rd.fail(Kind.INVALID, where + ": the unused high bits of the last byte are not 0");
        }
        rd.addRegion(offset, offset + length);
        return new VqmTensor.Section(role, dtype, dims, offset, length, count);
    }

    private long fileSize() {
        return buf.capacity();
    }
}
