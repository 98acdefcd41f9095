package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hand-made fixtures small enough to check by eye. Every expected value is exact: the decodes
 * are table look-ups or sums/products of values exactly representable in float32.
 */
class VqmReaderTest {
    static TinyVqm.Rec kmeans2x3() {
        TinyVqm.Rec r = new TinyVqm.Rec("fc.weight", 2, new int[] {2, 3});
        r.k = 3;
        r.bits = 2;
        r.secs.add(new TinyVqm.Sec(1, 0, new int[] {3}, TinyVqm.f32(-1f, 0.5f, 2f)));
        // indices 0,1,2,2 | 1,0 at 2 bits, LSB first: 0b10_10_01_00 = 0xA4, then 0b01 = 0x01
        r.secs.add(new TinyVqm.Sec(2, 5, new int[] {6}, new byte[] {(byte) 0xA4, 0x01}));
        return r;
    }

    private static VqmFile parse(TinyVqm v) throws VqmException {
        return VqmReader.parse(v.build(), "tiny.vqm");
    }

    @Test
    void unpacksTheSpecExample() {
        // FORMAT.md: b = 3, values [5, 3, 7] -> bytes 0xDD 0x01
        assertArrayEquals(new int[] {5, 3, 7}, Bits.unpack(new byte[] {(byte) 0xDD, 0x01}, 0, 3, 3));
        assertEquals(2, Bits.packedBytes(3, 3));
    }

    @Test
    void unpacksSixteenAndStraddlingWidths() {
        assertArrayEquals(new int[] {0xBEEF, 0x0102}, Bits.unpack(new byte[] {(byte) 0xEF, (byte) 0xBE, 0x02, 0x01}, 0, 2, 16));
        // b = 9: 0x1FF then 0x001 -> bits 111111111 100000000 -> 0xFF 0x03 0x00
        assertArrayEquals(new int[] {0x1FF, 1}, Bits.unpack(new byte[] {(byte) 0xFF, 0x03, 0x00}, 0, 2, 9));
        // b = 15 at bit offset 7 straddles three bytes
        assertArrayEquals(new int[] {0, 0x7FFF}, Bits.unpack(new byte[] {0, (byte) 0x80, (byte) 0xFF, 0x3F}, 0, 2, 15));
    }

    @Test
    void widensHalfFloatsExactly() {
        assertEquals(1.0f, Bits.halfToFloat(0x3C00));
        assertEquals(-2.0f, Bits.halfToFloat(0xC000));
        assertEquals(65504f, Bits.halfToFloat(0x7BFF));
        assertEquals((float) Math.pow(2, -24), Bits.halfToFloat(0x0001)); // smallest subnormal
        assertEquals(Float.POSITIVE_INFINITY, Bits.halfToFloat(0x7C00));
        assertTrue(Float.isNaN(Bits.halfToFloat(0x7E00)));
        assertEquals(Float.floatToIntBits(-0.0f), Float.floatToIntBits(Bits.halfToFloat(0x8000)));
    }

    @Test
    void decodesKmeans() throws Exception {
        TinyVqm v = new TinyVqm();
        v.recs.add(kmeans2x3());
        VqmFile f = parse(v);
        assertArrayEquals(new float[] {-1f, 0.5f, 2f, 2f, 0.5f, -1f}, f.get("fc.weight").decode());
    }

    @Test
    void decodesBinaryWithHalfCodebook() throws Exception {
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = new TinyVqm.Rec("w", 1, new int[] {1, 4});
        r.k = 2;
        r.bits = 1;
        r.secs.add(new TinyVqm.Sec(1, 1, new int[] {2}, TinyVqm.f16(0xB800, 0x3800))); // [-0.5, +0.5]
        r.secs.add(new TinyVqm.Sec(2, 5, new int[] {4}, new byte[] {0b0110}));
        v.recs.add(r);
        assertArrayEquals(new float[] {-0.5f, 0.5f, 0.5f, -0.5f}, parse(v).get("w").decode());
    }

    @Test
    void decodesPqColumnsAndRows() throws Exception {
        // cb [s=2, k=2, d=2]: seg0 = {(1,2), (3,4)}, seg1 = {(5,6), (7,8)}
        byte[] cb = TinyVqm.f32(1, 2, 3, 4, 5, 6, 7, 8);
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec cols = new TinyVqm.Rec("cols", 3, new int[] {2, 4}); // m=2, n=4, d=2
        cols.k = 2;
        cols.d = 2;
        cols.bits = 1;
        cols.secs.add(new TinyVqm.Sec(1, 0, new int[] {2, 2, 2}, cb));
        // I[s, m] = [[1, 0], [0, 1]] -> stream 1,0,0,1 -> 0b1001
        cols.secs.add(new TinyVqm.Sec(2, 5, new int[] {2, 2}, new byte[] {0b1001}));
        TinyVqm.Rec rows = new TinyVqm.Rec("rows", 3, new int[] {4, 2}); // m=4, n=2, segments of 2 rows
        rows.k = 2;
        rows.d = 2;
        rows.rows = 1;
        rows.bits = 1;
        rows.secs.add(new TinyVqm.Sec(1, 0, new int[] {2, 2, 2}, cb));
        rows.secs.add(new TinyVqm.Sec(2, 5, new int[] {2, 2}, new byte[] {0b1001}));
        v.recs.add(cols);
        v.recs.add(rows);
        VqmFile f = parse(v);
        // W[r, j*d+c] = cb[j, I[j,r], c]: row0 = (3,4 | 5,6), row1 = (1,2 | 7,8)
        assertArrayEquals(new float[] {3, 4, 5, 6, 1, 2, 7, 8}, f.get("cols").decode());
        // W[j*d+c, col] = cb[j, I[j,col], c]: col0 = (3,4,5,6), col1 = (1,2,7,8)
        assertArrayEquals(new float[] {3, 1, 4, 2, 5, 7, 6, 8}, f.get("rows").decode());
    }

    @Test
    void decodesRqAndSvd() throws Exception {
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec rq = new TinyVqm.Rec("rq", 4, new int[] {2, 2}); // t=2, k=2, n=2
        rq.k = 2;
        rq.stages = 2;
        rq.bits = 1;
        rq.secs.add(new TinyVqm.Sec(1, 0, new int[] {2, 2, 2}, TinyVqm.f32(1, 1, 2, 2, 0.25f, 0.5f, -0.25f, -0.5f)));
        // I[t, m] = [[0, 1], [1, 0]] -> stream 0,1,1,0 -> 0b0110
        rq.secs.add(new TinyVqm.Sec(2, 5, new int[] {2, 2}, new byte[] {0b0110}));
        TinyVqm.Rec svd = new TinyVqm.Rec("svd", 5, new int[] {2, 3});
        svd.rank = 1;
        svd.secs.add(new TinyVqm.Sec(3, 0, new int[] {2, 1}, TinyVqm.f32(2, -1)));
        svd.secs.add(new TinyVqm.Sec(4, 0, new int[] {1, 3}, TinyVqm.f32(1, 0.5f, 3)));
        v.recs.add(rq);
        v.recs.add(svd);
        VqmFile f = parse(v);
        assertArrayEquals(new float[] {0.75f, 0.5f, 2.25f, 2.5f}, f.get("rq").decode());
        assertArrayEquals(new float[] {2, 1, 6, -1, -0.5f, -3}, f.get("svd").decode());
    }

    @Test
    void keepsRawTensorsAsStored() throws Exception {
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = new TinyVqm.Rec("bn.num_batches_tracked", 0, new int[0]);
        r.secs.add(new TinyVqm.Sec(0, 2, new int[0], TinyVqm.i64(7)));
        v.recs.add(r);
        VqmTensor t = parse(v).get("bn.num_batches_tracked");
        assertEquals("int64", t.decodedDtype());
        assertArrayEquals(TinyVqm.i64(7), t.decodedBytes());
    }

    @Test
    void acceptsAHigherMinorVersion() throws Exception {
        TinyVqm v = new TinyVqm();
        v.minor = 7;
        v.recs.add(kmeans2x3());
        assertEquals(7, parse(v).versionMinor);
    }

    private static VqmException.Kind kindOf(TinyVqm v) {
        return assertThrows(VqmException.class, () -> parse(v)).kind();
    }

    @Test
    void rejectsBadFilesWithTheirKind() {
        TinyVqm v = new TinyVqm();
        v.major = 4; // 1 to 3 are read
        v.recs.add(kmeans2x3());
        assertEquals(VqmException.Kind.VERSION, kindOf(v));

        TinyVqm ge = new TinyVqm();
        TinyVqm.Rec r = kmeans2x3();
        r.secs.get(1).payload = new byte[] {(byte) 0xA7, 0x01}; // first index 3 >= k = 3
        ge.recs.add(r);
        assertEquals(VqmException.Kind.INVALID, kindOf(ge));

        TinyVqm extra = new TinyVqm();
        extra.recs.add(kmeans2x3());
        extra.tableExtra = new byte[] {1, 2, 3};
        assertEquals(VqmException.Kind.INVALID, kindOf(extra));

        TinyVqm json = new TinyVqm();
        json.recs.add(kmeans2x3());
        json.metadata = "{not json";
        assertEquals(VqmException.Kind.INVALID, kindOf(json));

        TinyVqm overlap = new TinyVqm();
        TinyVqm.Rec o = kmeans2x3();
        o.secs.get(1).payload = new byte[] {(byte) 0xA4, 0x01};
        o.secs.get(1).forcedOffset = 64L; // both sections at 64
        overlap.recs.add(o);
        assertEquals(VqmException.Kind.CHECKSUM, kindOf(overlap)); // the indices crc no longer matches 64..66

        TinyVqm wrongDims = new TinyVqm();
        TinyVqm.Rec w = kmeans2x3();
        w.shape = new int[] {3, 2};
        w.secs.get(1).dims = new int[] {5};
        w.secs.get(1).payload = new byte[] {(byte) 0xA4, 0x00};
        wrongDims.recs.add(w);
        assertEquals(VqmException.Kind.INVALID, kindOf(wrongDims));
    }

    @Test
    void rejectsOverlappingSections() {
        // Two raw tensors whose sections share bytes: both crcs match, only the overlap check fails.
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec a = new TinyVqm.Rec("a", 0, new int[] {2});
        a.secs.add(new TinyVqm.Sec(0, 0, new int[] {2}, TinyVqm.f32(1, 2)));
        TinyVqm.Rec b = new TinyVqm.Rec("b", 0, new int[] {2});
        TinyVqm.Sec sb = new TinyVqm.Sec(0, 0, new int[] {2}, TinyVqm.f32(1, 2));
        sb.forcedOffset = 64L;
        b.secs.add(sb);
        v.recs.add(a);
        v.recs.add(b);
        VqmException e = assertThrows(VqmException.class, () -> parse(v));
        assertEquals(VqmException.Kind.BOUNDS, e.kind(), e.getMessage());
        assertTrue(e.getMessage().contains("overlap"), e.getMessage());
    }

    @Test
    void readsFromDiskAndNamesTheFile(@TempDir Path tmp) throws IOException {
        TinyVqm v = new TinyVqm();
        v.recs.add(kmeans2x3());
        Path p = tmp.resolve("m.vqm");
        Files.write(p, v.build());
        assertEquals(1, VqmReader.read(p.toFile()).tensors.size());
        Files.write(p, new byte[10]);
        VqmException e = assertThrows(VqmException.class, () -> VqmReader.read(p.toFile()));
        assertEquals(VqmException.Kind.NOT_VQM, e.kind());
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        assertThrows(VqmException.class, () -> VqmReader.read(new File(tmp.toFile(), "missing.vqm")));
    }
}
