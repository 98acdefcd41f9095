package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class StatsTest {
    // Expected values are numpy.percentile(..., method="linear") of the same samples; the
    // interpolation is exact in binary for these inputs except where a 1e-12 tolerance is given.

    @Test
    void percentilesInterpolateLikeNumpy() {
        double[] s = {1, 2, 3, 4};
        assertEquals(2.5, Stats.percentile(s, 50));
        assertEquals(3.7, Stats.percentile(s, 90), 1e-12); // pos 2.7
        assertEquals(3.85, Stats.percentile(s, 95), 1e-12); // pos 2.85
        assertEquals(1.0, Stats.percentile(s, 0));
        assertEquals(4.0, Stats.percentile(s, 100));
    }

    @Test
    void statsSortAUnsortedSample() {
        double[] s = new double[101];
        for (int i = 0; i <= 100; i++) {
            s[i] = 100 - i; // 100 .. 0, descending
        }
        Stats st = new Stats(s);
        assertEquals(0, st.min);
        assertEquals(100, st.max);
        assertEquals(50, st.p50);
        assertEquals(90, st.p90);
        assertEquals(95, st.p95);
        assertEquals(99, st.p99);
        assertEquals(50, st.mean);
        // numpy.std(range(101)) (ddof=0) = sqrt(850)
        assertEquals(Math.sqrt(850), st.std, 1e-12);
        assertEquals(101, st.n);
        assertEquals(100, s[0], "the caller's array is not reordered");
    }

    @Test
    void oneSampleIsEveryPercentile() {
        Stats st = new Stats(new double[] {3.5});
        assertEquals(3.5, st.p50);
        assertEquals(3.5, st.p95);
        assertEquals(0.0, st.std);
    }

    @Test
    void stdHasNoCancellationOnTightLargeSamples() {
        // 1e6 +- 1e-3: a one-pass sum of squares loses every digit of the spread here.
        double[] s = new double[1000];
        for (int i = 0; i < s.length; i++) {
            s[i] = 1e6 + (i % 2 == 0 ? 1e-3 : -1e-3);
        }
        assertEquals(1e-3, new Stats(s).std, 1e-9);
    }

    @Test
    void rejectsEmptyAndOutOfRange() {
        assertThrows(IllegalArgumentException.class, () -> new Stats(new double[0]));
        assertThrows(IllegalArgumentException.class, () -> Stats.percentile(new double[] {1}, 101));
        assertThrows(IllegalArgumentException.class, () -> Stats.percentile(new double[] {1}, -1));
    }

    @Test
    void jsonHasTheDocumentedKeys() {
        assertEquals("[runs, min, p50, p90, p95, p99, mean, std, max]", new Stats(new double[] {1, 2}).toJson().keySet().toString());
    }
}
