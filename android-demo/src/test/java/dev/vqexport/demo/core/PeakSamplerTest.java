package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class PeakSamplerTest {
    /** A probe whose reading the test sets. */
    static final class Scripted extends MemoryProbe {
        final AtomicLong rss = new AtomicLong(100);
        final AtomicLong reads = new AtomicLong();

        @Override
        public Map<String, Long> quick() {
            reads.incrementAndGet();
            Map<String, Long> m = new LinkedHashMap<>();
            m.put("vm_rss_kb", rss.get());
            return m;
        }
    }

    @Test
    void keepsThePeakOfAShortSpike() throws Exception {
        Scripted p = new Scripted();
        PeakSampler s = new PeakSampler(p, 1).start();
        long seen = p.reads.get();
        p.rss.set(5000); // a load's transient peak ...
        while (p.reads.get() < seen + 3) {
            Thread.sleep(1);
        }
        p.rss.set(200); // ... gone by the end
        Map<String, Object> peak = s.stop();
        assertEquals(5000L, peak.get("vm_rss_kb"), "the end state alone would say 200");
        assertTrue(((Number) peak.get("samples")).intValue() >= 4);
    }

    @Test
    void samplesAtStartAndStopEvenWhenFasterThanThePeriod() {
        Scripted p = new Scripted();
        Map<String, Object> peak = new PeakSampler(p, 60000).start().stop();
        assertEquals(100L, peak.get("vm_rss_kb"));
        assertEquals(2, peak.get("samples"));
    }

    @Test
    void rejectsABadPeriod() {
        assertThrows(IllegalArgumentException.class, () -> new PeakSampler(new MemoryProbe(), 0));
    }
}
