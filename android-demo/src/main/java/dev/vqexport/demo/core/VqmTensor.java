package dev.vqexport.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One record of a .vqm tensor table, already validated by {@link VqmReader}, plus its decode.
 * Field names follow docs/FORMAT.md.
 */
public final class VqmTensor {
    public static final String[] METHODS = {"raw", "binary", "kmeans", "pq", "rq", "svd"};
    public static final String[] ROLES = {"raw", "codebook", "indices", "factor_a", "factor_b"};
    public static final String[] DTYPES = {"float32", "float16", "int64", "int32", "uint8", "packed", "float64", "bool"};
    /** Bytes per element of each dtype code; 0 for packed. */
    public static final int[] ITEMSIZE = {4, 2, 8, 4, 1, 0, 8, 1};

    /** One payload section of a tensor. */
    public static final class Section {
        public final int role;
        public final int dtype;
        public final int[] dims;
        public final long offset;
        public final long length;
        public final long count;

        Section(int role, int dtype, int[] dims, long offset, long length, long count) {
            this.role = role;
            this.dtype = dtype;
            this.dims = dims;
            this.offset = offset;
            this.length = length;
            this.count = count;
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
    /** Sections by role name, in file order. */
    public final Map<String, Section> sections;
    private final byte[] file;

    VqmTensor(byte[] file, String name, int method, int[] shape, int k, int d, boolean rows, int stages,
              int rank, int bits, LinkedHashMap<String, Section> sections) {
        this.file = file;
        this.name = name;
        this.method = method;
        this.shape = shape;
        this.k = k;
        this.d = d;
        this.rows = rows;
        this.stages = stages;
        this.rank = rank;
        this.bits = bits;
        this.sections = sections;
    }

    public String methodName() {
        return METHODS[method];
    }

    public long numel() {
        long n = 1;
        for (int s : shape) {
            n *= s;
        }
        return n;
    }

    /** The unpacked indices of the "indices" section. */
    public int[] indices() {
        Section s = sections.get("indices");
        return Bits.unpack(file, (int) s.offset, (int) s.count, bits);
    }

    /** A float32 or float16 section widened to float32. */
    public float[] floats(String role) {
        Section s = sections.get(role);
        float[] out = new float[(int) s.count];
        ByteBuffer b = ByteBuffer.wrap(file, (int) s.offset, (int) s.length).order(ByteOrder.LITTLE_ENDIAN);
        if (s.dtype == 0) {
            b.asFloatBuffer().get(out);
        } else if (s.dtype == 1) {
            for (int i = 0; i < out.length; i++) {
                out[i] = Bits.halfToFloat(b.getShort() & 0xFFFF);
            }
        } else {
            throw new IllegalStateException(name + "/" + role + ": not a float section");
        }
        return out;
    }

    /** The raw payload of a raw tensor: its bytes as stored (little-endian, its own dtype). */
    public byte[] rawBytes() {
        Section s = sections.get("raw");
        byte[] out = new byte[(int) s.length];
        System.arraycopy(file, (int) s.offset, out, 0, out.length);
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
     * The decoded m x n weight of a compressed tensor, row-major, following FORMAT.md "Decoding".
     * For a raw float32/float16 tensor, its values as float32.
     */
    public float[] decode() {
        switch (method) {
            case 0:
                return floats("raw");
            case 1: // binary
            case 2: { // kmeans: W.flat[i] = cb[I[i]]
                float[] cb = floats("codebook");
                int[] idx = indices();
                float[] w = new float[idx.length];
                for (int i = 0; i < idx.length; i++) {
                    w[i] = cb[idx[i]];
                }
                return w;
            }
            case 3:
                return decodePq();
            case 4:
                return decodeRq();
            case 5:
                return decodeSvd();
            default:
                throw new IllegalStateException("unknown method " + method);
        }
    }

    private float[] decodePq() {
        int m = shape[0];
        int n = shape[1];
        float[] cb = floats("codebook"); // [s, k, d]
        int[] idx = indices(); // [s, vectors]
        int vectors = rows ? n : m;
        int s = (rows ? m : n) / d;
        float[] w = new float[m * n];
        for (int j = 0; j < s; j++) {
            for (int v = 0; v < vectors; v++) {
                int base = (j * k + idx[j * vectors + v]) * d;
                for (int c = 0; c < d; c++) {
                    if (rows) {
                        w[(j * d + c) * n + v] = cb[base + c]; // W[j*d+c, col] = cb[j, I[j,col], c]
                    } else {
                        w[v * n + j * d + c] = cb[base + c]; // W[r, j*d+c] = cb[j, I[j,r], c]
                    }
                }
            }
        }
        return w;
    }

    private float[] decodeRq() {
        int m = shape[0];
        int n = shape[1];
        float[] cb = floats("codebook"); // [t, k, n]
        int[] idx = indices(); // [t, m]
        float[] w = new float[m * n];
        // Summed in float32, stage 0 first, starting from +0.0 as the Python reference does.
        for (int t = 0; t < stages; t++) {
            for (int r = 0; r < m; r++) {
                int base = (t * k + idx[t * m + r]) * n;
                for (int c = 0; c < n; c++) {
                    w[r * n + c] += cb[base + c];
                }
            }
        }
        return w;
    }

    private float[] decodeSvd() {
        int m = shape[0];
        int n = shape[1];
        float[] a = floats("factor_a"); // [m, r]
        float[] b = floats("factor_b"); // [r, n]
        float[] w = new float[m * n];
        // Accumulated in double and rounded once: the closest we can get to an exact product.
        // BLAS (the Python reference) sums in float32 in its own order, so the two agree to a
        // few ulps, not bit for bit.
        double[] row = new double[n];
        for (int i = 0; i < m; i++) {
            java.util.Arrays.fill(row, 0.0);
            for (int p = 0; p < rank; p++) {
                double av = a[i * rank + p];
                int off = p * n;
                for (int j = 0; j < n; j++) {
                    row[j] += av * b[off + j];
                }
            }
            for (int j = 0; j < n; j++) {
                w[i * n + j] = (float) row[j];
            }
        }
        return w;
    }
}
