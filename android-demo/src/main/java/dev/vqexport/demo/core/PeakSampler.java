package dev.vqexport.demo.core;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Samples {@link MemoryProbe#quick} on a daemon thread and keeps the largest value of each field:
 * the peak memory while a model loads. VmHWM is the peak over the whole process, so it says
 * nothing about a load that comes after a bigger one; this peak is taken over the load alone.
 */
public final class PeakSampler {
    private final MemoryProbe probe;
    private final long periodMillis;
    private final Map<String, Long> peak = new LinkedHashMap<String, Long>();
    private int samples;
    private volatile boolean stop;
    private Thread thread;

    public PeakSampler(MemoryProbe probe, long periodMillis) {
        if (periodMillis < 1) {
            throw new IllegalArgumentException("sampling period must be >= 1 ms, got " + periodMillis);
        }
        this.probe = probe;
        this.periodMillis = periodMillis;
    }

    /** Takes a first sample at once, then one every period until {@link #stop}. */
    public synchronized PeakSampler start() {
        if (thread != null) {
            throw new IllegalStateException("already started");
        }
        sample();
        thread = new Thread(new Runnable() {
            @Override
            public void run() {
                while (!stop) {
                    try {
                        Thread.sleep(periodMillis);
                    } catch (InterruptedException e) {
                        return;
                    }
                    sample();
                }
            }
        }, "vqexport-peak-sampler");
        thread.setDaemon(true);
        thread.start();
        return this;
    }

    /**
     * Samples once more (the end state counts), stops the thread if one was started, returns the
     * peaks with "samples" and "period_ms".
     */
    public Map<String, Object> stop() {
        stop = true;
        Thread t;
        synchronized (this) {
            t = thread;
        }
        if (t != null) {
            t.interrupt();
            try {
                t.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        sample();
        synchronized (this) {
            Map<String, Object> out = new LinkedHashMap<String, Object>(peak);
            out.put("samples", samples);
            out.put("period_ms", periodMillis);
            return out;
        }
    }

    /** One reading now, on the caller's thread: for sampling between timed runs without a thread. */
    public void sampleNow() {
        sample();
    }

    private void sample() {
        Map<String, Long> now;
        try {
            now = probe.quick();
        } catch (RuntimeException e) {
            return; // a failed reading is a missing sample, not a failed benchmark
        }
        synchronized (this) {
            samples++;
            for (Map.Entry<String, Long> e : now.entrySet()) {
                Long old = peak.get(e.getKey());
                if (e.getValue() != null && (old == null || e.getValue() > old)) {
                    peak.put(e.getKey(), e.getValue());
                }
            }
        }
    }
}
