package dev.vqexport.demo.core;

import java.io.File;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * Run by TfliteHeapTest in a JVM with a small -Xmx: maps a decode="load" .tflite, expands it with
 * TfliteExternal into a mapped file under CACHE_DIR and compares the result with Python's
 * expansion byte for byte, both mapped (nothing of either on the heap). Prints one line starting
 * with "match" or "MISMATCH"; exits 0 only on a match.
 *
 * <pre>java -Xmx32m -cp ... dev.vqexport.demo.core.HeapBoundedExpand MODEL EXPANDED CACHE_DIR</pre>
 */
public final class HeapBoundedExpand {
    private HeapBoundedExpand() {
    }

    static ByteBuffer map(String path) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(path, "r")) {
            return f.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, f.length());
        }
    }

    public static void main(String[] args) throws Exception {
        ByteBuffer model = map(args[0]);
        ByteBuffer want = map(args[1]);
        File cache = new File(args[2]);
        ByteBuffer got = TfliteExternal.expand(model, new File(args[0]).getName(), VqmLimits.DEFAULT, cache);
        long peak = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP) {
                peak += p.getPeakUsage().getUsed();
            }
        }
        String[] left = cache.list();
        String stats = " bytes=" + got.capacity() + " direct=" + got.isDirect() + " max_heap=" + Runtime.getRuntime().maxMemory()
                + " peak_heap=" + peak + " cache_files=" + (left == null ? -1 : left.length);
        int at = got.duplicate().clear().mismatch(want.duplicate().clear());
        if (at == -1) {
            System.out.println("match" + stats);
            System.exit(0);
        }
        System.out.println("MISMATCH at byte " + at + stats);
        System.exit(1);
    }
}
