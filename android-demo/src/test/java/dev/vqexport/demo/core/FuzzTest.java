package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.nio.ByteBuffer;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14 "Fuzzing": mutated inputs through VqmReader (with decode) and TfliteExternal, a small
 * fixed budget with a fixed seed (a few seconds); FuzzMain runs the same for millions of inputs.
 * Allowed outcomes: success or a one-line checked error naming the file; nothing else, no hang.
 */
class FuzzTest {
    private static void check(Fuzzer.Report r, long n) {
        System.out.print(r.summary());
        assertEquals(n, r.inputs);
        assertEquals(0, r.unexpectedTotal(), r.summary());
        assertTrue(r.slowestNanos < 2_000_000_000L, "slowest input took " + r.slowestNanos / 1e6 + " ms");
    }

    @Test
    void vqmReaderSurvivesMutatedFiles(@TempDir File tmp) throws Exception {
        List<FuzzSeeds.Seed> seeds = FuzzSeeds.vqm(Vectors.dir());
        Fuzzer.Report r = new Fuzzer(Fuzzer.Target.VQM, seeds, 20261130L, VqmLimits.DEFAULT, tmp).run(4000, 10_000, null, 0);
        check(r, 4000);
        // The mutations must reach past the checksums, or the fuzzer tests little.
        long deep = r.outcomes.getOrDefault("VqmException/INVALID", 0L) + r.outcomes.getOrDefault("VqmException/BOUNDS", 0L);
        assertTrue(deep > 1000, "too few inputs got past the checksums: " + r.outcomes);
        assertTrue(r.outcomes.getOrDefault("ok", 0L) > 50, "too few inputs decoded: " + r.outcomes);
    }

    @Test
    void tfliteLoaderSurvivesMutatedFiles(@TempDir File tmp) throws Exception {
        List<FuzzSeeds.Seed> seeds = FuzzSeeds.tflite(Vectors.dir());
        if (seeds.isEmpty()) {
            Vectors.part("tflite"); // fails when vectors are required, skips otherwise
            assumeTrue(false, "no .tflite test vectors");
        }
        Fuzzer.Report r = new Fuzzer(Fuzzer.Target.TFLITE, seeds, 20261130L, VqmLimits.DEFAULT, tmp).run(600, 10_000, null, 0);
        check(r, 600);
        assertTrue(r.outcomes.getOrDefault("ok (expanded)", 0L) > 20, "too few inputs expanded: " + r.outcomes);
        assertTrue(r.outcomes.getOrDefault("TfliteFormatException", 0L) > 20, "FlatBuffer damage not reached: " + r.outcomes);
    }

    @Test
    void theFlatBufferReaderBoundsEveryLength() {
        // The cases the old reader failed on: a length field of 2^31-1 (it allocated 2 GB), a
        // negative length (NegativeArraySizeException), a table past the end (BufferUnderflow).
        byte[] model = new byte[64];
        ByteBuffer b = ByteBuffer.wrap(model).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, 32).put(4, (byte) 'T').put(5, (byte) 'F').put(6, (byte) 'L').put(7, (byte) '3');
        b.putShort(8, (short) 18).putShort(10, (short) 8).putShort(8 + 4 + 2 * 6, (short) 4); // vtable: field 6 at +4
        b.putInt(32, 32 - 8); // the Model table at 32, its vtable at 8
        b.putInt(36, 4); // metadata: the vector at 40
        for (int len : new int[] {Integer.MAX_VALUE, -1, 1 << 20}) {
            b.putInt(40, len);
            TfliteFormatException e = org.junit.jupiter.api.Assertions.assertThrows(TfliteFormatException.class,
                    () -> TfliteMetadata.entry(ByteBuffer.wrap(model), "vqexport", "m.tflite"));
            assertTrue(e.getMessage().startsWith("m.tflite: not a valid .tflite FlatBuffer (a vector of"), e.getMessage());
        }
        b.putInt(40, 1);
        b.putInt(44, 1000); // the entry's offset points past the end
        TfliteFormatException e = org.junit.jupiter.api.Assertions.assertThrows(TfliteFormatException.class,
                () -> TfliteMetadata.entry(ByteBuffer.wrap(model), "vqexport", "m.tflite"));
        assertTrue(e.getMessage().contains("outside the 64-byte file"), e.getMessage());
    }
}
