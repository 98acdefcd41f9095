package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Map;
import org.junit.jupiter.api.Test;

class ProcStatusTest {
    @Test
    void parsesMemoryLines() {
        Map<String, Long> m = ProcStatus.parse("Name:\tapp\nVmHWM:\t  123456 kB\nRssAnon:\t 789 kB\nThreads:\t12\n");
        assertEquals(123456L, m.get("VmHWM"));
        assertEquals(789L, m.get("RssAnon"));
        assertFalse(m.containsKey("Threads"));
        assertFalse(m.containsKey("Name"));
    }
}
