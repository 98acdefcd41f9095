package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Issue 14 item 9: decompression bombs and dimension products that overflow, in the Java reader. */
class VqmLimitsTest {
    /** PQ columns with k=2 and d=n: one codebook row of n floats per code, one bit per output row. */
    static TinyVqm pqBomb(int m, int n, boolean half) {
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = new TinyVqm.Rec("fc.weight", 3, new int[] {m, n});
        r.k = 2;
        r.d = n;
        r.bits = 1;
        r.secs.add(new TinyVqm.Sec(1, half ? 1 : 0, new int[] {1, 2, n}, new byte[(half ? 2 : 4) * 2 * n]));
        r.secs.add(new TinyVqm.Sec(2, 5, new int[] {1, m}, new byte[m / 8]));
        v.recs.add(r);
        return v;
    }

    private static VqmException reject(byte[] file, VqmLimits limits) {
        VqmException e = assertThrows(VqmException.class, () -> VqmReader.parse(ByteBuffer.wrap(file), "bomb.vqm", limits));
        assertTrue(e.getMessage().startsWith("bomb.vqm: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e;
    }

    @Test
    void refusesA32GiBBombWithAValidChecksum() throws Exception {
        byte[] file = pqBomb(1 << 17, 1 << 16, false).build(); // 2^33 weights = 32 GiB of float32
        assertTrue(file.length < 600_000, "the bomb is small: " + file.length);
        long t0 = System.nanoTime();
        VqmException e = reject(file, VqmLimits.DEFAULT);
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "refused before any decoding");
        assertEquals(VqmException.Kind.INVALID, e.kind());
        assertTrue(e.getMessage().contains("declares 34359738368 bytes"), e.getMessage());
        assertTrue(e.getMessage().contains("over 4096 x the " + file.length + "-byte file"), e.getMessage());
        // With only the absolute cap in the way, that is the one named.
        e = reject(file, new VqmLimits(VqmLimits.DEFAULT_MAX_DECODED_BYTES, 1L << 20));
        assertTrue(e.getMessage().contains("over the cap of 4294967296 bytes"), e.getMessage());

        // A caller that trusts the file raises the caps: it then reads (but a float[] cannot hold it).
        VqmFile f = VqmReader.parse(ByteBuffer.wrap(file), "bomb.vqm", new VqmLimits(64L << 30, 1L << 20));
        assertEquals(1L << 33, f.get("fc.weight").numel());
        assertThrows(IllegalStateException.class, () -> f.get("fc.weight").decode());
    }

    @Test
    void refusesMoreThan4096TimesTheFileSize() throws Exception {
        byte[] file = pqBomb(1 << 14, 1 << 12, true).build(); // 256 MiB from about 19 KB
        VqmException e = reject(file, VqmLimits.DEFAULT);
        assertTrue(e.getMessage().contains("over 4096 x the " + file.length + "-byte file"), e.getMessage());
        assertEquals(1, VqmReader.parse(ByteBuffer.wrap(file), "ok.vqm", new VqmLimits(1L << 30, 1L << 16)).tensors.size());
        // Both caps are the defaults the Python reader uses.
        assertEquals(4L << 30, VqmLimits.DEFAULT.maxDecodedBytes);
        assertEquals(4096, VqmLimits.DEFAULT.maxRatio);
    }

    @Test
    void catchesShapeProductsThatOverflow() {
        TinyVqm v = new TinyVqm(); // (65536,) x 4 = 2^64, which wraps to 0 in 64-bit arithmetic
        TinyVqm.Rec r = new TinyVqm.Rec("big", 0, new int[] {65536, 65536, 65536, 65536});
        r.secs.add(new TinyVqm.Sec(0, 0, new int[] {65536, 65536, 65536, 65536}, new byte[0]));
        v.recs.add(r);
        VqmException e = reject(v.build(), new VqmLimits(Long.MAX_VALUE, Long.MAX_VALUE));
        assertTrue(e.getMessage().contains("overflows 64 bits"), e.getMessage());

        TinyVqm s = new TinyVqm(); // a section whose dims wrap, in a tensor whose own shape is fine
        TinyVqm.Rec k = VqmReaderTest.kmeans2x3();
        k.secs.get(1).dims = new int[] {65536, 65536, 65536, 65536};
        s.recs.add(k);
        e = reject(s.build(), VqmLimits.DEFAULT);
        assertTrue(e.getMessage().contains("fc.weight/indices: the product of the dimensions overflows"), e.getMessage());
    }

    @Test
    void expectedDimsAreComputedIn64Bits() {
        // m*n = 65536 * 65537 = 2^32 + 65536, which a 32-bit product wraps to 65536: the indices
        // section below would have matched it. With the caps lifted, only the layout check is left.
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = new TinyVqm.Rec("fc.weight", 2, new int[] {65536, 65537});
        r.k = 3;
        r.bits = 2;
        r.secs.add(new TinyVqm.Sec(1, 0, new int[] {3}, TinyVqm.f32(-1f, 0.5f, 2f)));
        r.secs.add(new TinyVqm.Sec(2, 5, new int[] {65536}, new byte[65536 / 4]));
        v.recs.add(r);
        VqmException e = reject(v.build(), new VqmLimits(Long.MAX_VALUE, Long.MAX_VALUE));
        assertTrue(e.getMessage().contains("needs sections {codebook: [3], indices: [4295032832]}"), e.getMessage());
    }

    @Test
    void theLoadLoaderAppliesTheCapsToo() throws Exception {
        Map<String, Object> part = Vectors.part("tflite");
        byte[] file = Vectors.read((String) part.get("load_model"));
        IOException e = assertThrows(IOException.class,
                () -> TfliteExternal.expand(ByteBuffer.wrap(file), "load.tflite", new VqmLimits(1000, 4096)));
        assertTrue(e.getMessage().startsWith("load.tflite"), e.getMessage());
        assertTrue(e.getMessage().contains("over the cap of 1000 bytes"), e.getMessage());
    }
}
