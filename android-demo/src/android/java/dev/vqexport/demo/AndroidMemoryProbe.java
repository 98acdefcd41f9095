package dev.vqexport.demo;

import android.os.Debug;
import dev.vqexport.demo.core.MemoryProbe;
import java.util.Map;

/** The JVM probe's /proc fields plus Debug.MemoryInfo's total PSS and native heap. */
final class AndroidMemoryProbe extends MemoryProbe {
    @Override
    public Map<String, Object> snapshot() {
        Map<String, Object> m = super.snapshot();
        Debug.MemoryInfo mi = new Debug.MemoryInfo();
        Debug.getMemoryInfo(mi);
        m.put("pss_total_kb", (long) mi.getTotalPss());
        m.put("native_pss_kb", (long) mi.nativePss);
        m.put("native_heap_alloc_kb", Debug.getNativeHeapAllocatedSize() / 1024);
        m.put("native_heap_size_kb", Debug.getNativeHeapSize() / 1024);
        return m;
    }

    /** Adds the native heap (cheap) to the JVM probe's reading; Debug.MemoryInfo is too slow to sample. */
    @Override
    public Map<String, Long> quick() {
        Map<String, Long> m = super.quick();
        m.put("native_heap_alloc_kb", Debug.getNativeHeapAllocatedSize() / 1024);
        return m;
    }
}
