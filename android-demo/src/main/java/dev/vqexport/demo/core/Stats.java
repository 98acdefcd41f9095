package dev.vqexport.demo.core;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Latency statistics over a sample of durations in milliseconds: the figures TFLite's
 * benchmark_model prints (count, min, max, avg, std) plus percentiles.
 */
public final class Stats {
    public final int n;
    public final double min;
    public final double max;
    public final double mean;
    /** Population standard deviation (divides by n), as benchmark_model's Stat computes it. */
    public final double std;
    public final double p50;
    public final double p90;
    public final double p95;
    public final double p99;

    public Stats(double[] samples) {
        if (samples == null || samples.length == 0) {
            throw new IllegalArgumentException("no samples");
        }
        double[] s = samples.clone();
        Arrays.sort(s);
        n = s.length;
        min = s[0];
        max = s[n - 1];
        double sum = 0;
        for (double v : s) {
            sum += v;
        }
        mean = sum / n;
        double sq = 0;
        for (double v : s) {
            sq += (v - mean) * (v - mean); // two-pass: no cancellation for tight samples
        }
        std = Math.sqrt(sq / n);
        p50 = percentile(s, 50);
        p90 = percentile(s, 90);
        p95 = percentile(s, 95);
        p99 = percentile(s, 99);
    }

    /**
     * The q-th percentile (0..100) of ascending-sorted values, linearly interpolated between the
     * two closest ranks: position q/100 * (n-1). This is numpy.percentile's default ("linear"),
     * so the Python side computes the same numbers from the same samples.
     */
    public static double percentile(double[] sorted, double q) {
        if (sorted.length == 0) {
            throw new IllegalArgumentException("no samples");
        }
        if (q < 0 || q > 100 || Double.isNaN(q)) {
            throw new IllegalArgumentException("percentile must be in 0..100, got " + q);
        }
        double pos = q / 100.0 * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, sorted.length - 1);
        double frac = pos - lo;
        return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
    }

    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("runs", n);
        m.put("min", min);
        m.put("p50", p50);
        m.put("p90", p90);
        m.put("p95", p95);
        m.put("p99", p99);
        m.put("mean", mean);
        m.put("std", std);
        m.put("max", max);
        return m;
    }
}
