package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The section layout each method needs (FORMAT.md "Decoding"): the sections must be exactly
 * these roles with exactly these dims, codebooks and factors float, indices packed and &lt; k.
 */
final class VqmLayout {
    private VqmLayout() {
    }

    static void check(VqmTensor t, String file) throws VqmException {
        String m = t.methodName();
        Map<String, int[]> want = new LinkedHashMap<String, int[]>();
        if (t.method == 0) {
            want.put("raw", t.shape);
        } else {
            if (t.shape.length != 2 || Math.min(t.shape[0], t.shape[1]) < 1) {
                throw new VqmException(Kind.INVALID, file, t.name + ": a " + m + " tensor must be 2-D, table says "
                        + Arrays.toString(t.shape));
            }
            int rows = t.shape[0];
            int cols = t.shape[1];
            switch (t.method) {
                case 1:
                    if (t.k != 2 || t.bits != 1) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": binary needs k=2 and 1-bit indices");
                    }
                    want.put("codebook", new int[] {2});
                    want.put("indices", new int[] {rows * cols});
                    break;
                case 2:
                    want.put("codebook", new int[] {t.k});
                    want.put("indices", new int[] {rows * cols});
                    break;
                case 3: {
                    int vectors = t.rows ? cols : rows;
                    int length = t.rows ? rows : cols;
                    if (t.d < 1 || length % t.d != 0) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": d=" + t.d + " does not divide " + length);
                    }
                    want.put("codebook", new int[] {length / t.d, t.k, t.d});
                    want.put("indices", new int[] {length / t.d, vectors});
                    break;
                }
                case 4:
                    want.put("codebook", new int[] {t.stages, t.k, cols});
                    want.put("indices", new int[] {t.stages, rows});
                    break;
                case 5:
                    want.put("factor_a", new int[] {rows, t.rank});
                    want.put("factor_b", new int[] {t.rank, cols});
                    break;
                default:
                    throw new VqmException(Kind.INVALID, file, t.name + ": unknown method " + t.method);
            }
        }
        boolean same = want.size() == t.sections.size();
        for (Map.Entry<String, int[]> e : want.entrySet()) {
            VqmTensor.Section s = t.sections.get(e.getKey());
            same &= s != null && Arrays.equals(s.dims, e.getValue());
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
                int[] ind = t.indices();
                for (int v : ind) {
                    if (v >= t.k) {
                        throw new VqmException(Kind.INVALID, file, t.name + ": an index is >= k=" + t.k);
                    }
                }
            }
        }
    }

    private static String describe(Map<String, int[]> m) {
        StringBuilder b = new StringBuilder("{");
        for (Map.Entry<String, int[]> e : m.entrySet()) {
            if (b.length() > 1) {
                b.append(", ");
            }
            b.append(e.getKey()).append(": ").append(Arrays.toString(e.getValue()));
        }
        return b.append('}').toString();
    }

    private static String describeSections(VqmTensor t) {
        Map<String, int[]> got = new LinkedHashMap<String, int[]>();
        for (VqmTensor.Section s : t.sections.values()) {
            got.put(s.roleName(), s.dims);
        }
        return describe(got);
    }
}
