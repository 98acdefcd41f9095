package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One record of a .vqm tensor table, already validated by {@link VqmReader}, plus its decode.
 * Field names follow docs/FORMAT.md. The payloads stay in the file's buffer: {@link #decodeRange}
 * decodes any run of elements into a caller's scratch array, so a loader can fill a mapped file
 * block by block without ever holding a whole layer on the Java heap.
 */
public final class VqmTensor {
    public static final String[] METHODS = {"raw", "binary", "kmeans", "pq", "rq", "svd", "vq"};
    /**
     * Rank of one codebook section per method (CODEBOOK_NDIM of each vqexport/methods module); a
     * codebook section of one more dimension is grouped, its leading dim the group count.
     */
    static final int[] CODEBOOK_NDIM = {0, 1, 1, 3, 3, 0, 2};
    /** The table fields each method reads (TABLE of each method module); the others must be 0. */
    static final String[][] TABLE = {
        {}, {"k", "bits"}, {"k", "bits"}, {"k", "d", "rows", "bits"}, {"k", "stages", "bits"}, {"rank"}, {"k", "d", "bits"},
    };
    public static final String[] ROLES = {"raw", "codebook", "indices", "factor_a", "factor_b"};
    public static final String[] DTYPES = {"float32", "float16", "int64", "int32", "uint8", "packed", "float64", "bool",
        "huffman"};
    /** Bytes per element of each dtype code; 0 for packed and huffman, whose length the dims do not give. */
    public static final int[] ITEMSIZE = {4, 2, 8, 4, 1, 0, 8, 1, 0};
    static final int PACKED = 5;
    /** Canonical Huffman indices (FORMAT.md 3.0); the reader decodes them into a packed section. */
    static final int HUFFMAN = 8;
    /** The longest Java array: decode() cannot return more elements than this. */
    static final int MAX_ARRAY = Integer.MAX_VALUE - 8;

    /** One payload section of a tensor. */
    public static final class Section {
        public final int role;
        public final int dtype;
        public final int[] dims;
        public final long offset;
        public final long length;
        public final long count;
        /** Huffman-coded in the file: its packed indices, decoded by the reader (offset 0); else null. */
        final ByteBuffer decoded;
        /** Huffman-coded in the file: the coded payload's length (the packed one is {@link #length}); else 0. */
        public final long codedLength;

        Section(int role, int dtype, int[] dims, long offset, long length, long count) {
            this(role, dtype, dims, offset, length, count, null, 0);
        }

        private Section(int role, int dtype, int[] dims, long offset, long length, long count, ByteBuffer decoded,
                        long codedLength) {
            this.role = role;
            this.dtype = dtype;
            this.dims = dims;
            this.offset = offset;
            this.length = length;
            this.count = count;
            this.decoded = decoded;
            this.codedLength = codedLength;
        }

        /** The packed section a Huffman one decodes to: its indices on the heap, packed at the tensor's width. */
        Section packedFrom(byte[] packed) {
            return new Section(role, PACKED, dims, 0, packed.length, count, ByteBuffer.wrap(packed), length);
        }

        public String roleName() {
            return ROLES[role];
        }

        public String dtypeName() {
            return DTYPES[dtype];
        }
    }

    public final String name;
    public final int method;
    public final int[] shape;
    public final int k;
    public final int d;
    public final boolean rows;
    public final int stages;
    public final int rank;
    public final int bits;
    /** Codebooks along the rows, each for m / groups consecutive rows (--group-size); 1 without. */
    public final int groups;
    /** The matrix every method decodes (vqexport/ir.py matrix_shape): m = shape[0], n = the rest's product. */
    public final long m;
    public final long n;
    /** Sections by role name, in file order. */
    public final Map<String, Section> sections;
    private final ByteBuffer file;

    VqmTensor(ByteBuffer file, String name, int method, int[] shape, int k, int d, boolean rows, int stages,
              int rank, int bits, int groups, LinkedHashMap<String, Section> sections) {
        this.file = file.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        this.name = name;
        this.method = method;
        this.shape = shape;
        this.k = k;
        this.d = d;
        this.rows = rows;
        this.stages = stages;
        this.rank = rank;
        this.bits = bits;
        this.groups = groups;
        this.sections = sections;
        long rest = 1; // the reader checked that the product of the shape fits in 64 bits
        for (int i = 1; i < shape.length; i++) {
            rest *= shape[i];
        }
        this.m = shape.length == 0 ? 1 : shape[0];
        this.n = rest;
    }

    /** The file's bytes, for the reader's checks. */
    ByteBuffer fileBuffer() {
        return file;
    }

    /** Whether the method reads this tensor-table field. */
    static boolean reads(int method, String field) {
        for (String f : TABLE[method]) {
            if (f.equals(field)) {
                return true;
            }
        }
        return false;
    }

    /** What only version 2.0 holds: an N-D compressed weight, grouped codebooks, method vq (vqm.py needs_v2). */
    boolean needsV2() {
        return method != 0 && (shape.length != 2 || groups != 1 || method > 5);
    }

    public String methodName() {
        return METHODS[method];
    }

    /** The element count; the reader checked that the product fits in 64 bits. */
    public long numel() {
        long count = 1;
        for (int s : shape) {
            count *= s;
        }
        return count;
    }

    /** Unpacked value {@code i} of the "indices" section. */
    int index(long i) {
        Section s = sections.get("indices");
        return Bits.get(s.decoded != null ? s.decoded : file, (int) s.offset, (int) s.length, i, bits);
    }

    /** Element {@code i} of a float32 or float16 section, widened to float32. */
    float at(Section s, long i) {
        return s.dtype == 0 ? file.getFloat((int) (s.offset + 4 * i)) : Bits.halfToFloat(file.getShort((int) (s.offset + 2 * i)) & 0xFFFF);
    }

    /** The unpacked indices of the "indices" section. */
    public int[] indices() {
        Section s = sections.get("indices");
        int[] out = new int[checkedLength(s.count)];
        for (int i = 0; i < out.length; i++) {
            out[i] = index(i);
        }
        return out;
    }

    /** A float32 or float16 section widened to float32. */
    public float[] floats(String role) {
        Section s = sections.get(role);
        if (s.dtype != 0 && s.dtype != 1) {
            throw new IllegalStateException(name + "/" + role + ": not a float section");
        }
        float[] out = new float[checkedLength(s.count)];
        for (int i = 0; i < out.length; i++) {
            out[i] = at(s, i);
        }
        return out;
    }

    /** The raw payload of a raw tensor: its bytes as stored (little-endian, its own dtype). */
    public byte[] rawBytes() {
        Section s = sections.get("raw");
        byte[] out = new byte[checkedLength(s.length)];
        ByteBuffer d = file.duplicate();
        d.clear();
        d.position((int) s.offset);
        d.get(out);
        return out;
    }

    /** The dtype name of the decoded tensor: float32 for every compressed tensor. */
    public String decodedDtype() {
        return method == 0 ? DTYPES[sections.get("raw").dtype] : "float32";
    }

    /** The decoded tensor as little-endian bytes: raw tensors as stored, the others as f32. */
    public byte[] decodedBytes() {
        if (method == 0) {
            return rawBytes();
        }
        float[] w = decode();
        ByteBuffer b = ByteBuffer.allocate(w.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(w);
        return b.array();
    }

    /**
     * The decoded m x n weight of a compressed tensor, row-major (the N-D tensor in C order),
     * following FORMAT.md "Decoding".
     * For a raw float32/float16 tensor, its values as float32. One array of the whole tensor: a
     * loader that must stay off the heap uses {@link #decodeRange} instead.
     */
    public float[] decode() {
        float[] w = new float[checkedLength(numel())];
        decodeRange(false, 0, w, 0, w.length, new double[method == 5 ? Math.min(w.length, 1 << 16) : 0]);
        return w;
    }

    private int checkedLength(long n) {
        if (n > MAX_ARRAY) {
            throw new IllegalStateException(name + ": " + n + " elements do not fit in one Java array; use decodeRange");
        }
        return (int) n;
    }

    /**
     * Decodes {@code len} elements of the decoded matrix, from flat row-major position {@code start},
     * into {@code out[off..off+len)}. With {@code transposed} the matrix is W's transpose (n x m),
     * as a "WT" slot holds it. {@code acc} is scratch for svd (at least min(len, row length) doubles);
     * the values are those of {@link #decode()} bit for bit.
     */
    public void decodeRange(boolean transposed, long start, float[] out, int off, int len, double[] acc) {
        if (method == 0) {
            if (transposed) {
                throw new IllegalStateException(name + ": a raw tensor has no transposed decode");
            }
            Section s = sections.get("raw");
            if (s.dtype != 0 && s.dtype != 1) {
                throw new IllegalStateException(name + "/raw: not a float section");
            }
            for (int j = 0; j < len; j++) {
                out[off + j] = at(s, start + j);
            }
            return;
        }
        if (transposed && shape.length != 2) {
            throw new IllegalStateException(name + ": only a 2-D weight has a transposed decode");
        }
        long cols = transposed ? m : n;
        long row = start / cols;
        long col = start % cols;
        int done = 0;
        while (done < len) {
            int piece = (int) Math.min(len - done, cols - col);
            VqmDecode.piece(this, transposed, row, col, piece, out, off + done, acc);
            done += piece;
            row++;
            col = 0;
        }
    }

    /**
     * Decodes {@code len} elements of the tensor transposed by {@code axes} (a permutation of its
     * dimensions, as numpy's transpose: output dim i is input dim axes[i]), from flat C-order
     * position {@code start} of that transposed tensor, into {@code out[off..off+len)}. Each element
     * is decoded on its own, with the same operations as {@link #decode()}, so the bytes agree.
     */
    public void decodePermuted(int[] axes, long start, float[] out, int off, int len, double[] acc) {
        int nd = shape.length;
        if (method == 0 || axes.length != nd) {
            throw new IllegalStateException(name + ": a permuted decode needs a compressed tensor and one axis per dimension");
        }
        long[] inStride = new long[nd];
        long stride = 1;
        for (int i = nd - 1; i >= 0; i--) {
            inStride[i] = stride;
            stride *= shape[i];
        }
        long[] outDim = new long[nd];
        long[] step = new long[nd]; // the input stride of each output dimension
        for (int i = 0; i < nd; i++) {
            outDim[i] = shape[axes[i]];
            step[i] = inStride[axes[i]];
        }
        long[] idx = new long[nd];
        long rest = start;
        long src = 0;
        for (int i = nd - 1; i >= 0; i--) {
            idx[i] = rest % outDim[i];
            rest /= outDim[i];
            src += idx[i] * step[i];
        }
        for (int j = 0; j < len; j++) {
            VqmDecode.piece(this, false, src / n, src % n, 1, out, off + j, acc);
            for (int i = nd - 1; i >= 0; i--) { // the next output position, an odometer over outDim
                idx[i]++;
                src += step[i];
                if (idx[i] < outDim[i]) {
                    break;
                }
                src -= idx[i] * step[i];
                idx[i] = 0;
            }
        }
    }
}
