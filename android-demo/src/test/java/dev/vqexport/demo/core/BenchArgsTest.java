package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The intent extras as `am start` delivers them: --ei gives an Integer, --es a String, --el a Long. */
class BenchArgsTest {
    private static BenchArgs parse(Object... kv) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return BenchArgs.parse(m);
    }

    @Test
    void goodExtrasSetEverySetting() {
        BenchArgs a = parse("models", " a.tflite, b.vqm ,a.tflite", "runs", 7, "min_ms", 0, "warmup", 0,
                "threads", 4, "max_eval", 100, "cooldown_ms", 5000L);
        assertEquals(List.of(), a.errors);
        assertNull(a.errorLine());
        assertEquals(List.of("a.tflite", "b.vqm"), a.models, "trimmed, duplicates once");
        assertEquals(7, a.settings.minRuns);
        assertEquals(0, a.settings.minMillis);
        assertEquals(0, a.settings.warmup);
        assertEquals(4, a.settings.threads);
        assertEquals(100, a.settings.maxEval);
        assertEquals(5000, a.cooldownMillis);
        new Bench(a.settings, new MemoryProbe()); // what parse accepts, Bench accepts
    }

    @Test
    void noExtrasIsAnInteractiveLaunchWithDefaults() {
        BenchArgs a = BenchArgs.parse(null);
        assertNull(a.models);
        assertTrue(a.errors.isEmpty());
        assertEquals(50, a.settings.minRuns);
        assertEquals(List.of(), parse("models", "all").models, "all = every model");
    }

    @Test
    void outOfRangeValuesAreErrorsNamingTheExtra() {
        Object[][] bad = {{"runs", 0}, {"runs", -5}, {"warmup", -1}, {"min_ms", -1}, {"threads", 0},
            {"threads", 65}, {"max_eval", -1}, {"cooldown_ms", -1}, {"runs", 2000000000L}};
        for (Object[] kv : bad) {
            BenchArgs a = parse(kv[0], kv[1]);
            assertEquals(1, a.errors.size(), kv[0] + "=" + kv[1]);
            assertTrue(a.errors.get(0).startsWith("extra " + kv[0] + " must be in"), a.errors.get(0));
            assertTrue(a.errorLine().contains(String.valueOf(kv[1])), a.errorLine());
        }
    }

    @Test
    void wronglyTypedExtrasAreErrorsNotIgnored() {
        BenchArgs a = parse("runs", "5", "warmup", 1.5f, "threads", true, "models", 3);
        assertEquals(4, a.errors.size(), a.errors.toString());
        assertTrue(a.errorLine().contains("extra runs must be an integer (--ei runs N), got String \"5\""), a.errorLine());
        assertTrue(a.errorLine().contains("extra models must be a string"), a.errorLine());
        assertEquals(50, a.settings.minRuns, "a rejected value sets nothing");
    }

    @Test
    void modelNamesArePlainModelFiles() {
        assertTrue(parse("models", "").errorLine().contains("models is empty"));
        assertTrue(parse("models", "a.tflite,,b.vqm").errorLine().contains("empty name"));
        assertTrue(parse("models", "../x.tflite").errorLine().contains("not a plain file name"));
        assertTrue(parse("models", "notes.txt").errorLine().contains("not a .tflite, .onnx or .vqm"));
    }

    @Test
    void unknownExtrasAreReportedNotErrors() {
        BenchArgs a = parse("run", 5, "models", "a.tflite");
        assertEquals(List.of("run"), a.ignored);
        assertTrue(a.errors.isEmpty());
    }
}
