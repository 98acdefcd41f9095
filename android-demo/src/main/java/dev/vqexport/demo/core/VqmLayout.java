package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The section layout each method needs (FORMAT.md "Decoding"): the sections must be exactly
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
            // 2-D with m, n >= 1: VqmRecords checked it before counting the decoded size.
            long rows = t.shape[0];
            long cols = t.shape[1];
            switch (t.method) {
                case 1:
                    if (t.k != 2 || t.bits != 1) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": binary needs k=2 and 1-bit indices");
                    }
                    want.put("codebook", new long[] {2});
                    want.put("indices", new long[] {rows * cols});
                    break;
                case 2:
                    want.put("codebook", new long[] {t.k});
                    want.put("indices", new long[] {rows * cols});
                    break;
                case 3: {
                    long vectors = t.rows ? cols : rows;
                    long length = t.rows ? rows : cols;
                    if (t.d < 1 || length % t.d != 0) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": d=" + t.d + " does not divide " + length);
                    }
                    want.put("codebook", new long[] {length / t.d, t.k, t.d});
                    want.put("indices", new long[] {length / t.d, vectors});
                    break;
                }
                case 4:
                    want.put("codebook", new long[] {t.stages, t.k, cols});
                    want.put("indices", new long[] {t.stages, rows});
                    break;
                case 5:
                    want.put("factor_a", new long[] {rows, t.rank});
                    want.put("factor_b", new long[] {t.rank, cols});
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
        if (idx != null) {
            if (idx.dtype != 5) {
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
