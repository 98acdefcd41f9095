package dev.vqexport.demo.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void parsesNestedValues() {
        Map<String, Object> m = Json.parseObject(
                "{\"a\": [1, 2.5, -3e2], \"b\": {\"c\": \"x\\\"y\\u00e9\"}, \"t\": true, \"n\": null}");
        assertEquals(List.of(1.0, 2.5, -300.0), m.get("a"));
        assertEquals("x\"y\u00e9", ((Map<?, ?>) m.get("b")).get("c"));
        assertEquals(Boolean.TRUE, m.get("t"));
        assertNull(m.get("n"));
    }

    @Test
    void roundTrips() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("int", 3);
        m.put("double", 0.25);
        m.put("nan", Double.NaN);
        m.put("arr", new float[] {1.5f, 2f});
        m.put("s", "tab\there");
        m.put("list", List.of(Map.of("k", 1L)));
        String text = Json.write(m, 2);
        Map<String, Object> back = Json.parseObject(text);
        assertEquals(3.0, back.get("int"));
        assertEquals(0.25, back.get("double"));
        assertNull(back.get("nan"), "NaN is written as null");
        assertEquals(List.of(1.5, 2.0), back.get("arr"));
        assertEquals("tab\there", back.get("s"));
        assertEquals(1.0, ((Map<?, ?>) ((List<?>) back.get("list")).get(0)).get("k"));
    }

    @Test
    void rejectsBadText() {
        assertThrows(IllegalArgumentException.class, () -> Json.parse("{\"a\": }"));
        assertThrows(IllegalArgumentException.class, () -> Json.parse("[1, 2"));
        assertThrows(IllegalArgumentException.class, () -> Json.parse("1 2"));
        assertThrows(IllegalArgumentException.class, () -> Json.parseObject("[1]"));
    }
}
