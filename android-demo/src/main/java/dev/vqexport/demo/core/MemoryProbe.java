package dev.vqexport.demo.core;

import java.util.LinkedHashMap;
import java.util.Map;

/** A memory snapshot source; the app adds Debug.MemoryInfo, the JVM has /proc and the heap. */
public class MemoryProbe {
    /** Fields in kB: vm_hwm_kb, vm_rss_kb, rss_anon_kb (from /proc/self/status), java_heap_kb. */
    public Map<String, Object> snapshot() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        Map<String, Long> st = ProcStatus.readSelf();
        m.put("vm_hwm_kb", st.get("VmHWM"));
        m.put("vm_rss_kb", st.get("VmRSS"));
        m.put("rss_anon_kb", st.get("RssAnon"));
        Runtime rt = Runtime.getRuntime();
        m.put("java_heap_kb", (rt.totalMemory() - rt.freeMemory()) / 1024);
        return m;
    }

    /**
     * A cheap reading for sampling many times a second: vm_rss_kb, rss_anon_kb (from
     * /proc/self/status) and java_heap_kb. The app adds the native heap.
     */
    public Map<String, Long> quick() {
        Map<String, Long> m = new LinkedHashMap<String, Long>();
        Map<String, Long> st = ProcStatus.readSelf();
        putIf(m, "vm_rss_kb", st.get("VmRSS"));
        putIf(m, "rss_anon_kb", st.get("RssAnon"));
        Runtime rt = Runtime.getRuntime();
        m.put("java_heap_kb", (rt.totalMemory() - rt.freeMemory()) / 1024);
        return m;
    }

    protected static void putIf(Map<String, Long> m, String key, Long v) {
        if (v != null) {
            m.put(key, v);
        }
    }

    /** after - before for every numeric field both have. */
    public static Map<String, Object> delta(Map<String, Object> before, Map<String, Object> after) {
        Map<String, Object> d = new LinkedHashMap<String, Object>();
        for (Map.Entry<String, Object> e : after.entrySet()) {
            Object b = before.get(e.getKey());
            if (b instanceof Number && e.getValue() instanceof Number) {
                d.put(e.getKey(), ((Number) e.getValue()).longValue() - ((Number) b).longValue());
            }
        }
        return d;
    }
}
