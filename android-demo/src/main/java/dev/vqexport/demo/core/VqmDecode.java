package dev.vqexport.demo.core;

/**
 * FORMAT.md "Decoding", one run of one output row at a time, reading codebooks, factors and
 * indices in place. Output row {@code row}, columns {@code col0 .. col0+len}: element (r, c) of
 * the m x n weight W (m = shape[0], n = the product of the rest), or of its transpose when a slot
 * holds W^T. Grouped codebooks: row r reads group r / (m / groups). Each value is computed exactly as
 * the whole-tensor reference computes it (same operations, same order), so the bytes agree.
 */
final class VqmDecode {
    private VqmDecode() {
    }

    static void piece(VqmTensor t, boolean transposed, long row, long col0, int len, float[] out, int off, double[] acc) {
        long m = t.m;
        long n = t.n;
        long perGroup = m / t.groups; // rows per codebook group: row r uses group r / perGroup
        switch (t.method) {
            case 1: // binary: cb [2] ([g, 2] grouped)
            case 2: { // kmeans: W.flat[i] = cb[g(r)][I[i]], cb [k] ([g, k] grouped)
                VqmTensor.Section cb = t.sections.get("codebook");
                long k = t.k;
                for (int j = 0; j < len; j++) {
                    long r = transposed ? col0 + j : row;
                    long c = transposed ? row : col0 + j;
                    out[off + j] = t.at(cb, (r / perGroup) * k + t.index(r * n + c));
                }
                return;
            }
            case 3: { // pq: cb [s, k, d] ([g, s, k, d] grouped, by columns only)
                VqmTensor.Section cb = t.sections.get("codebook");
                long d = t.d;
                long k = t.k;
                for (int j = 0; j < len; j++) {
                    long r = transposed ? col0 + j : row;
                    long c = transposed ? row : col0 + j;
                    float v;
                    if (t.rows) { // W[j*d+c, col] = cb[j, I[j, col], c], indices [s, n]
                        long seg = r / d;
                        v = t.at(cb, (seg * k + t.index(seg * n + c)) * d + r % d);
                    } else { // W[r, j*d+c] = cb[g(r), j, I[j, r], c], indices [s, m]
                        long s = n / d;
                        long seg = c / d;
                        v = t.at(cb, (((r / perGroup) * s + seg) * k + t.index(seg * m + r)) * d + c % d);
                    }
                    out[off + j] = v;
                }
                return;
            }
            case 4: { // rq: W[r, :] = sum_t cb[t, I[t, r], :], in float32, stage 0 first, from +0.0
                VqmTensor.Section cb = t.sections.get("codebook");
                long k = t.k;
                for (int j = 0; j < len; j++) {
                    long r = transposed ? col0 + j : row;
                    long c = transposed ? row : col0 + j;
                    float v = 0.0f;
                    for (int s = 0; s < t.stages; s++) {
                        v += t.at(cb, (s * k + t.index(s * m + r)) * n + c);
                    }
                    out[off + j] = v;
                }
                return;
            }
            case 5:
                svd(t, transposed, row, col0, len, out, off, acc);
                return;
            case 6: { // vq: W[r, j*d + c] = cb[g(r), I[r*(n/d) + j], c], cb [g, k, d], indices [m*n/d]
                VqmTensor.Section cb = t.sections.get("codebook");
                long d = t.d;
                long k = t.k;
                long per = n / d;
                for (int j = 0; j < len; j++) {
                    long r = transposed ? col0 + j : row;
                    long c = transposed ? row : col0 + j;
                    out[off + j] = t.at(cb, ((r / perGroup) * k + t.index(r * per + c / d)) * d + c % d);
                }
                return;
            }
            default:
                throw new IllegalStateException("unknown method " + t.method);
        }
    }

    /**
     * W = A B, accumulated in double over p = 0..r-1 and rounded once, as VqmTensor always did
     * (BLAS, the Python reference, sums in float32 in its own order: the two agree to a few ulps).
     */
    private static void svd(VqmTensor t, boolean transposed, long row, long col0, int len, float[] out, int off,
                            double[] acc) {
        VqmTensor.Section a = t.sections.get("factor_a"); // [m, r]
        VqmTensor.Section b = t.sections.get("factor_b"); // [r, n]
        if (acc == null || acc.length == 0) {
            throw new IllegalArgumentException("svd decode needs a scratch array");
        }
        long n = t.n;
        int rank = t.rank;
        int done = 0;
        while (done < len) {
            int chunk = Math.min(len - done, acc.length);
            java.util.Arrays.fill(acc, 0, chunk, 0.0);
            long c0 = col0 + done;
            for (int p = 0; p < rank; p++) {
                if (transposed) { // output row = W column `row`, output columns = W rows
                    double bv = t.at(b, p * n + row);
                    for (int j = 0; j < chunk; j++) {
                        acc[j] += t.at(a, (c0 + j) * rank + p) * bv;
                    }
                } else {
                    double av = t.at(a, row * rank + p);
                    for (int j = 0; j < chunk; j++) {
                        acc[j] += av * t.at(b, p * n + c0 + j);
                    }
                }
            }
            for (int j = 0; j < chunk; j++) {
                out[off + done + j] = (float) acc[j];
            }
            done += chunk;
        }
    }
}
