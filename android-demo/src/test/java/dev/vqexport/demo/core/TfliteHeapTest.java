package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 13 item 4: the decode="load" loader decodes off the Java heap. A JVM with -Xmx32m expands
 * a file with 64 MiB of decoded weights and must match Python's expansion byte for byte. The old
 * loader (ByteBuffer.allocateDirect, which HotSpot caps at -Xmx and ART puts in its managed heap,
 * plus one float[] per layer) runs out of memory here.
 */
class TfliteHeapTest {
    static final String XMX = "32m";

    @Test
    void expandsAModelLargerThanTheHeap(@TempDir File cache) throws Exception {
        Map<String, Object> big = Vectors.part("tflite_big");
        long decoded = ((Number) big.get("decoded_bytes")).longValue();
        assertTrue(decoded >= 2L * (32 << 20), "the model must be larger than the heap: " + decoded);
        String model = Vectors.dir().resolve((String) big.get("model")).toString();
        String want = Vectors.dir().resolve((String) big.get("expanded")).toString();
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = Arrays.asList(java, "-Xmx" + XMX, "-cp", System.getProperty("java.class.path"),
                HeapBoundedExpand.class.getName(), model, want, cache.getPath());
        File log = new File(cache.getParentFile(), "heap-child-" + System.nanoTime() + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log).start();
        boolean done = p.waitFor(300, TimeUnit.SECONDS);
        if (!done) {
            p.destroyForcibly();
        }
        String out = new String(Files.readAllBytes(log.toPath()), StandardCharsets.UTF_8).trim();
        Files.deleteIfExists(log.toPath());
        System.out.println("heap-bounded expand (-Xmx" + XMX + ", " + decoded + " decoded bytes): " + out);
        assertTrue(done, "the child JVM did not finish: " + out);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.startsWith("match bytes=" + Files.size(Paths.get(want)) + " direct=true"), out);
        long maxHeap = Long.parseLong(out.replaceAll(".* max_heap=(\\d+).*", "$1"));
        assertTrue(maxHeap < decoded / 2, "the child's heap (" + maxHeap + ") is not smaller than the model");
        assertTrue(out.endsWith("cache_files=0"), "the temporary file is unlinked once mapped: " + out);
    }
}
