package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The section layout each method needs (FORMAT.md "Decoding"; layout() of each method module in
 * vqexport/methods is the reference): the sections must be exactly
 * these roles with exactly these dims, codebooks and factors float and finite, indices packed and
 * &lt; k. Expected dims are computed in 64 bits, so a shape whose product wraps in 32 cannot match.
 */
final class VqmLayout {
    private VqmLayout() {
    }

    static void check(VqmTensor t, String file) throws VqmException {
        String m = t.methodName();
        Map<String, long[]> want = new LinkedHashMap<String, long[]>();
        if (t.method == 0) {
            long[] s = new long[t.shape.length];
            for (int i = 0; i < s.length; i++) {
                s[i] = t.shape[i];
            }
            want.put("raw", s);
        } else {
            // m, n >= 1: VqmRecords checked the shape before counting the decoded size.
            long rows = t.m;
            long cols = t.n;
            switch (t.method) {
                case 1:
                    if (t.k != 2 || t.bits != 1) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": binary needs k=2 and 1-bit indices");
                    }
                    want.put("codebook", grouped(t, file, 2));
                    want.put("indices", new long[] {rows * cols});
                    break;
                case 2:
                    want.put("codebook", grouped(t, file, t.k));
                    want.put("indices", new long[] {rows * cols});
                    break;
                case 3: {
                    long vectors = t.rows ? cols : rows;
                    long length = t.rows ? rows : cols;
                    if (t.d < 1 || length % t.d != 0) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": d=" + t.d + " does not divide " + length);
                    }
                    long s = length / t.d;
                    if (t.groups != 1 && (t.rows || t.groups < 1 || vectors % t.groups != 0)) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": " + t.groups + " codebook groups do not fit pq "
                                + (t.rows ? "by rows " : "") + "of " + vectors + " rows");
                    }
                    want.put("codebook", t.groups == 1 ? new long[] {s, t.k, t.d} : new long[] {t.groups, s, t.k, t.d});
                    want.put("indices", new long[] {s, vectors});
                    break;
                }
                case 4:
                    if (t.stages < 1) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": rq with 0 stages");
                    }
                    want.put("codebook", new long[] {t.stages, t.k, cols});
                    want.put("indices", new long[] {t.stages, rows});
                    break;
                case 5:
                    if (t.rank < 1 || t.rank > Math.min(rows, cols)) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": svd rank " + t.rank
                                + " is outside 1..min(m, n) = " + Math.min(rows, cols));
                    }
                    want.put("factor_a", new long[] {rows, t.rank});
                    want.put("factor_b", new long[] {t.rank, cols});
                    break;
                case 6:
                    if (t.d < 1 || cols % t.d != 0) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": d=" + t.d + " does not divide " + cols);
                    }
                    checkGroups(t, file);
                    want.put("codebook", new long[] {t.groups, t.k, t.d});
                    want.put("indices", new long[] {rows * cols / t.d});
                    break;
                default:
                    throw new VqmException(Kind.INVALID, file, t.name + ": unknown method " + t.method);
            }
        }
        boolean same = want.size() == t.sections.size();
        for (Map.Entry<String, long[]> e : want.entrySet()) {
            VqmTensor.Section s = t.sections.get(e.getKey());
            same &= s != null && sameDims(s.dims, e.getValue());
        }
        if (!same) {
            throw new VqmException(Kind.INVALID, file, t.name + ": method " + m + " needs sections " + describe(want)
                    + ", has " + describeSections(t));
        }
        for (VqmTensor.Section s : t.sections.values()) {
            boolean floatRole = s.role == 1 || s.role == 3 || s.role == 4;
            if (floatRole && s.dtype != 0 && s.dtype != 1) {
                throw new VqmException(Kind.INVALID, file, t.name + "/" + s.roleName() + ": dtype " + s.dtypeName()
                        + " where float32 or float16 is needed");
            }
            if (floatRole) {
                for (long i = 0; i < s.count; i++) {
                    float v = t.at(s, i);
                    if (Float.isNaN(v) || Float.isInfinite(v)) {
                        throw new VqmException(Kind.INVALID, file, t.name + "/" + s.roleName() + ": value " + i
                                + " is " + v + " (codebooks and factors must be finite)");
                    }
                }
            }
        }
        VqmTensor.Section idx = t.sections.get("indices");
        if (idx != null && idx.dtype == VqmTensor.HUFFMAN) {
            idx = decodeHuffman(t, idx, file);
        }
        if (idx != null) {
            if (idx.dtype != VqmTensor.PACKED) {
                throw new VqmException(Kind.INVALID, file, t.name + "/indices: dtype must be packed");
            }
            if (t.k > (1L << t.bits)) {
                throw new VqmException(Kind.INVALID, file, t.name + ": k=" + t.k + " does not fit in " + t.bits + "-bit indices");
            }
            if (t.k < (1L << t.bits)) {
                long at = -1;
                for (long i = 0; i < idx.count; i++) {
                    if (t.index(i) >= t.k) {
                        at = i;
                        break;
                    }
                }
                if (at >= 0) {
                    throw new VqmException(Kind.INVALID, file, t.name + ": an index is >= k=" + t.k);
                }
            }
        }
    }

    /**
     * Replaces a Huffman index section by the packed one it codes. Its dims have matched the
     * method's layout, so the packed array is no larger than the indices the tensor declares.
     */
    private static VqmTensor.Section decodeHuffman(VqmTensor t, VqmTensor.Section s, String file) throws VqmException {
        if (t.bits < 1 || t.bits > 16 || t.k < 1 || t.k > (1L << t.bits)) {
            throw new VqmException(Kind.INVALID, file, t.name + ": k=" + t.k + " does not fit in " + t.bits + "-bit indices");
        }
        byte[] packed;
        try {
            packed = VqmHuffman.decode(t.fileBuffer(), s.offset, s.length, s.count, t.k, t.bits);
        } catch (VqmHuffman.DamagedException e) {
            throw new VqmException(Kind.INVALID, file, t.name + "/indices: damaged Huffman section: " + e.getMessage());
        }
        VqmTensor.Section p = s.packedFrom(packed);
        t.sections.put("indices", p);
        return p;
    }

    /** binary and kmeans: {@code entries} ungrouped, [groups, entries] grouped (kmeans.py _grouped). */
    private static long[] grouped(VqmTensor t, String file, long entries) throws VqmException {
        checkGroups(t, file);
        return t.groups == 1 ? new long[] {entries} : new long[] {t.groups, entries};
    }

    private static void checkGroups(VqmTensor t, String file) throws VqmException {
        if (t.groups < 1 || t.m % t.groups != 0) {
            throw new VqmException(Kind.INVALID, file, t.name + ": " + t.groups + " codebook groups do not divide the "
                    + t.m + " rows");
        }
    }

    private static boolean sameDims(int[] got, long[] want) {
        if (got.length != want.length) {
            return false;
        }
        for (int i = 0; i < got.length; i++) {
            if (got[i] != want[i]) {
                return false;
            }
        }
        return true;
    }

    private static String describe(Map<String, long[]> m) {
        StringBuilder b = new StringBuilder("{");
        for (Map.Entry<String, long[]> e : m.entrySet()) {
            if (b.length() > 1) {
                b.append(", ");
            }
            b.append(e.getKey()).append(": ").append(Arrays.toString(e.getValue()));
        }
        return b.append('}').toString();
    }

    private static String describeSections(VqmTensor t) {
        StringBuilder b = new StringBuilder("{");
        for (VqmTensor.Section s : t.sections.values()) {
            if (b.length() > 1) {
                b.append(", ");
            }
            b.append(s.roleName()).append(": ").append(Arrays.toString(s.dims));
        }
        return b.append('}').toString();
    }
}
