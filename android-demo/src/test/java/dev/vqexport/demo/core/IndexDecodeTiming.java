package dev.vqexport.demo.core;

import java.io.File;

/**
 * A measurement, not a test (tools/entropy_indices.py runs it): the time the Java reader takes to
 * parse each .vqm given and decode every compressed tensor, best of several runs, one line per file.
 * Given a Huffman-coded file and its packed twin, the ratio of the two lines is the cost of the
 * coding, both measured in this one process.
 *
 * <pre>java -cp target/classes:target/test-classes dev.vqexport.demo.core.IndexDecodeTiming RUNS A.vqm B.vqm ...</pre>
 */
public final class IndexDecodeTiming {
    private IndexDecodeTiming() {
    }

    public static void main(String[] args) throws Exception {
        int runs = Integer.parseInt(args[0]);
        // Rounds before the printed one warm the JIT up. One was not enough: the coded file's indices
        // are decoded onto the heap, the packed file's read from the mapping, so the tensor decode
        // recompiles once it has seen both, and a small model's last round still paid for that.
        final int rounds = 4;
        for (int round = 0; round < rounds; round++) {
            for (int a = 1; a < args.length; a++) {
                long best = Long.MAX_VALUE;
                long parseBest = Long.MAX_VALUE;
                for (int r = 0; r < runs; r++) {
                    long t0 = System.nanoTime();
                    VqmFile f = VqmReader.read(new File(args[a]));
                    long t1 = System.nanoTime();
                    double sink = 0;
                    for (VqmTensor t : f.tensors) {
                        if (t.method != 0) {
                            sink += t.decode()[0];
                        }
                    }
                    long t2 = System.nanoTime();
                    parseBest = Math.min(parseBest, t1 - t0);
                    best = Math.min(best, t2 - t0);
                    if (sink == 12345.678) {
                        System.out.print("");
                    }
                }
                if (round == rounds - 1) {
                    System.out.printf("%s parse_ms=%.3f parse_decode_ms=%.3f%n", args[a], parseBest / 1e6, best / 1e6);
                }
            }
        }
    }
}
