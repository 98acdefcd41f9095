package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * Issue 14 item 10: the metadata JSON has a schema and a nesting limit, and the table fields that
 * FORMAT.md says are zero or consistent are checked. Every failure is a one-line VqmException.
 */
class VqmSchemaTest {
    private static String repeat(String s, int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append(s);
        }
        return b.toString();
    }

    private static String rejectMeta(String metadata) {
        TinyVqm v = new TinyVqm();
        v.recs.add(VqmReaderTest.kmeans2x3());
        v.metadata = metadata;
        return reject(v);
    }

    private static String reject(TinyVqm v) {
        byte[] file = v.build();
        VqmException e = assertThrows(VqmException.class, () -> VqmReader.parse(file, "m.vqm"));
        assertEquals(VqmException.Kind.INVALID, e.kind(), e.getMessage());
        assertTrue(e.getMessage().startsWith("m.vqm: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        assertTrue(e.getMessage().length() <= VqmException.MAX_MESSAGE, "short: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void metadataMustBeAnObject() {
        assertTrue(rejectMeta("\"x\"").contains("metadata is a string, not a JSON object"));
        assertTrue(rejectMeta("[]").contains("metadata is an array, not a JSON object"));
        assertTrue(rejectMeta("null").contains("metadata is null, not a JSON object"));
        assertTrue(rejectMeta("5").contains("not a JSON object"));
    }

    @Test
    void keysHaveTheirTypes() {
        assertTrue(rejectMeta("{\"skipped\": 5}").contains("metadata \"skipped\" must be an object"));
        assertTrue(rejectMeta("{\"skipped\": {\"fc.weight\": 3}}").contains("\"skipped.fc.weight\" must be a string"));
        assertTrue(rejectMeta("{\"labels\": [1, 2]}").contains("\"labels\" must be an array of strings"));
        assertTrue(rejectMeta("{\"labels\": \"cat\"}").contains("\"labels\" must be an array"));
        assertTrue(rejectMeta("{\"input\": 5}").contains("\"input\" must be an object or null"));
        assertTrue(rejectMeta("{\"input\": {\"shape\": [1, -3]}}").contains("\"input.shape\" must be an array of positive integers"));
        assertTrue(rejectMeta("{\"input\": {\"mean\": [\"a\"]}}").contains("\"input.mean\""));
        assertTrue(rejectMeta("{\"source\": []}").contains("\"source\" must be an object"));
        assertTrue(rejectMeta("{\"source\": {\"arch\": 7}}").contains("\"source.arch\" must be a string or null"));
        assertTrue(rejectMeta("{\"config\": {\"k\": 2.5}}").contains("\"config.k\" must be an integer"));
        assertTrue(rejectMeta("{\"config\": {\"k\": 3.0}}").contains("\"config.k\" must be an integer"));
        assertTrue(rejectMeta("{\"config\": {\"seed\": 9007199254740993}}").contains("\"config.seed\" must be an integer"));
        assertTrue(rejectMeta("{\"layers\": null}").contains("\"layers\" must be an object, is null"));
        assertTrue(rejectMeta("{\"skipped\": null}").contains("\"skipped\" must be an object, is null"));
        assertTrue(rejectMeta("{\"summary\": {\"x\": 1e400}}").contains("\"summary.x\" must be a finite number"));
        assertTrue(rejectMeta("{\"summary\": {\"x\": NaN}}").contains("not valid JSON"));
        assertTrue(rejectMeta("{\"labels\": [\"\\ud800\"]}").contains("lone surrogate"));
        assertTrue(rejectMeta("{\"layers\": {\"fc.weight\": {\"shape\": \"x\"}}}").contains("\"layers.fc.weight.shape\""));
        assertTrue(rejectMeta("{\"format\": 1}").contains("\"format\" must be a string"));
        assertTrue(rejectMeta("{\"summary\": {\"x\": \"y\"}}").contains("\"summary.x\""));
    }

    @Test
    void namesMustBeTensorsOfTheFile() {
        assertTrue(rejectMeta("{\"skipped\": {\"nosuch\": \"x\"}}").contains("\"skipped\" names nosuch"));
        assertTrue(rejectMeta("{\"skipped\": {\"fc.weight\": \"x\"}}").contains("not a raw tensor"));
        assertTrue(rejectMeta("{\"layers\": {\"nosuch\": {}}}").contains("\"layers\" names nosuch"));
    }

    @Test
    void deepNestingIsRefusedWithoutRecursion() {
        assertTrue(rejectMeta(repeat("[", 100_000)).contains("nested deeper than 64 levels"));
        assertTrue(rejectMeta("{\"a\": " + repeat("{\"a\": ", 100_000)).contains("nested deeper than 64 levels"));
        // 64 levels are fine (unknown keys are ignored), 65 are not.
        TinyVqm ok = new TinyVqm();
        ok.recs.add(VqmReaderTest.kmeans2x3());
        ok.metadata = "{\"x\": " + repeat("[", 63) + repeat("]", 63) + "}";
        assertEquals(1, assertDoesNotThrow(ok).tensors.size());
        assertTrue(rejectMeta("{\"x\": " + repeat("[", 64) + repeat("]", 64) + "}").contains("deeper than 64"));
        // Lenient syntax that could hide brackets from the depth scan is not JSON anyway.
        assertTrue(rejectMeta("{\"a\": 1 /* \" */}").contains("not valid JSON"));
        assertTrue(rejectMeta("{'a': 1}").contains("not valid JSON"));
    }

    private static VqmFile assertDoesNotThrow(TinyVqm v) {
        try {
            return VqmReader.parse(v.build(), "ok.vqm");
        } catch (VqmException e) {
            throw new AssertionError(e.getMessage(), e);
        }
    }

    @Test
    void acceptsWhatTheWriterWrites() {
        TinyVqm v = new TinyVqm();
        v.recs.add(VqmReaderTest.kmeans2x3());
        v.metadata = "{\"format\": \"vqm\", \"producer\": \"vqexport 0.1.0\", \"labels\": null, \"input\": {\"shape\": "
                + "[1, 1, 28, 28], \"layout\": \"NCHW\", \"mean\": null, \"std\": [0.3]}, \"layers\": {\"fc.weight\": "
                + "{\"method\": \"kmeans\", \"shape\": [2, 3], \"rel_error\": 0.1}}, \"source\": {\"arch\": null},"
                + " \"config\": {\"k\": 3, \"d\": null, \"rows\": false, \"layers\": [\"*\"], \"overrides\": {}},"
                + " \"summary\": {\"model_compression\": 1.5}, \"unknown\": [[{}]]}";
        assertEquals("vqm", assertDoesNotThrow(v).metadata.get("format"));
    }

    private static String rejectField(Consumer<TinyVqm.Rec> change) {
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = VqmReaderTest.kmeans2x3();
        change.accept(r);
        v.recs.add(r);
        return reject(v);
    }

    @Test
    void fieldsThatMustBeZeroAreZero() {
        assertTrue(rejectField(r -> r.secs.get(0).reserved = 1).contains("fc.weight/codebook: reserved byte is 1"));
        assertTrue(rejectField(r -> r.secs.get(1).unusedDim = 7).contains("fc.weight/indices: unused dimension 1 is 7"));
        assertTrue(rejectField(r -> r.d = 3).contains("fc.weight: d is 3 but kmeans does not use it"));
        assertTrue(rejectField(r -> r.stages = 1).contains("stages is 1"));
        assertTrue(rejectField(r -> r.rank = 1).contains("rank is 1"));
        assertTrue(rejectField(r -> r.rows = 1).contains("rows is 1"));
        assertTrue(rejectField(r -> r.rows = 2).contains("rows is 2, must be 0 or 1"));

        TinyVqm raw = new TinyVqm();
        TinyVqm.Rec b = new TinyVqm.Rec("bias", 0, new int[] {2});
        b.bits = 4;
        b.secs.add(new TinyVqm.Sec(0, 0, new int[] {2}, TinyVqm.f32(1, 2)));
        raw.recs.add(b);
        assertTrue(reject(raw).contains("bias: bits is 4 but raw does not use it"));
    }

    @Test
    void paddingAndUnusedIndexBitsAreZero() {
        TinyVqm v = new TinyVqm();
        v.recs.add(VqmReaderTest.kmeans2x3());
        byte[] file = v.build();
        file[100] = 1; // between the codebook (64..76) and the indices (128..130); no crc covers it
        VqmException e = assertThrows(VqmException.class, () -> VqmReader.parse(file, "m.vqm"));
        assertTrue(e.getMessage().contains("bytes 76..127 between regions are not zero padding"), e.getMessage());
        // 6 indices of 2 bits use 12 bits: the top 4 bits of the second byte must be 0.
        assertTrue(rejectField(r -> r.secs.get(1).payload = new byte[] {(byte) 0xA4, 0x11})
                .contains("fc.weight/indices: the unused high bits of the last byte are not 0"));
    }

    @Test
    void svdRankIsAtMostMinMN() {
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec svd = new TinyVqm.Rec("svd", 5, new int[] {2, 3});
        svd.rank = 3;
        svd.secs.add(new TinyVqm.Sec(3, 0, new int[] {2, 3}, TinyVqm.f32(1, 2, 3, 4, 5, 6)));
        svd.secs.add(new TinyVqm.Sec(4, 0, new int[] {3, 3}, TinyVqm.f32(1, 2, 3, 4, 5, 6, 7, 8, 9)));
        v.recs.add(svd);
        assertTrue(reject(v).contains("svd rank 3 is outside 1..min(m, n) = 2"));
    }

    @Test
    void tensorNamesAreUnique() {
        TinyVqm v = new TinyVqm();
        v.recs.add(VqmReaderTest.kmeans2x3());
        v.recs.add(VqmReaderTest.kmeans2x3());
        assertTrue(reject(v).contains("two tensors named fc.weight"));
    }

    @Test
    void codebooksAndFactorsAreFinite() {
        assertTrue(rejectField(r -> r.secs.get(0).payload = TinyVqm.f32(-1f, Float.NaN, 2f))
                .contains("fc.weight/codebook: value 1 is NaN"));
        assertTrue(rejectField(r -> r.secs.get(0).payload = TinyVqm.f32(Float.POSITIVE_INFINITY, 0.5f, 2f))
                .contains("value 0 is Infinity"));
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec svd = new TinyVqm.Rec("svd", 5, new int[] {2, 3});
        svd.rank = 1;
        svd.secs.add(new TinyVqm.Sec(3, 0, new int[] {2, 1}, TinyVqm.f32(2, -1)));
        svd.secs.add(new TinyVqm.Sec(4, 1, new int[] {1, 3}, TinyVqm.f16(0x3C00, 0x7C00, 0x3C00))); // f16 +inf
        v.recs.add(svd);
        assertTrue(reject(v).contains("svd/factor_b: value 1 is Infinity"));
    }

    @Test
    void namesFromTheFileCannotBreakTheLine() {
        // A tensor name is any UTF-8 the file holds; the fuzzer found one with a line break.
        TinyVqm v = new TinyVqm();
        TinyVqm.Rec r = VqmReaderTest.kmeans2x3();
        r.name = "evil\nname" + repeat("x", 70_000 / 2 / 2);
        r.d = 1;
        v.recs.add(r);
        String m = reject(v);
        assertTrue(m.contains("evil\\u000aname"), m);
    }

    /** vqexport's whole-model keys (issue 10) and tied weights: accepted when well formed, as Python does. */
    @Test
    void acceptsWholeModelKeysAndChecksTied() throws Exception {
        TinyVqm v = new TinyVqm();
        v.recs.add(VqmReaderTest.kmeans2x3());
        v.metadata = "{\"format\": \"vqm\", \"folded\": [[\"0\", \"1\"]], \"tied\": {\"head.weight\": \"fc.weight\"},"
                + " \"config\": {\"method\": \"kmeans\", \"types\": [\"conv\", \"linear\"], \"min_size\": 0,"
                + " \"group_size\": 4, \"fold_batchnorm\": true},"
                + " \"layers\": {\"fc.weight\": {\"method\": \"kmeans\", \"type\": \"linear\", \"group_size\": 0}}}";
        assertEquals(1, VqmReader.parse(v.build(), "m.vqm").tensors.size());
        assertTrue(rejectMeta("{\"tied\": 5}").contains("\"tied\" must be an object or null"));
        assertTrue(rejectMeta("{\"tied\": {\"head.weight\": 3}}").contains("\"tied.head.weight\" must be a string"));
        assertTrue(rejectMeta("{\"tied\": {\"fc.weight\": \"fc.weight\"}}").contains("the alias must not be stored"));
        assertTrue(rejectMeta("{\"tied\": {\"head.weight\": \"missing\"}}").contains("its target must be"));
    }
}
