package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

/**
 * The test vectors make_test_vectors.py writes (test.sh runs it into target/vectors). When the
 * system property vectors.required=true (test.sh sets it) their absence fails the tests;
 * otherwise (a plain `mvn test`) the tests that need them are skipped.
 */
final class Vectors {
    private Vectors() {
    }

    static Path dir() {
        return Paths.get(System.getProperty("vectors.dir", "target/vectors"));
    }

    static boolean required() {
        return Boolean.parseBoolean(System.getProperty("vectors.required", "false"));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> manifest() throws IOException {
        Path m = dir().resolve("manifest.json");
        if (!Files.isRegularFile(m)) {
            if (required()) {
                fail("no test vectors at " + m + ": run android-demo/make_test_vectors.py first");
            }
            assumeTrue(false, "no test vectors at " + m);
        }
        return Json.parseObject(new String(Files.readAllBytes(m), StandardCharsets.UTF_8));
    }

    /** A manifest part (onnx, tflite) that the Python side may have skipped. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> part(String name) throws IOException {
        Map<String, Object> p = (Map<String, Object>) manifest().get(name);
        assumeTrue(p != null && !p.containsKey("skipped"),
                "make_test_vectors skipped " + name + ": " + (p == null ? "absent" : p.get("skipped")));
        return p;
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> list(String name) throws IOException {
        return (List<Map<String, Object>>) manifest().get(name);
    }

    static byte[] read(String relative) throws IOException {
        return Files.readAllBytes(dir().resolve(relative));
    }
}
