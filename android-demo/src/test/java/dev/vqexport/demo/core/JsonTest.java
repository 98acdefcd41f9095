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

    /**
     * The measurement behind keeping this parser (Json class comment): 23 inputs, what Python's
     * reader (json.loads, with FORMAT.md's rules) does with each, and what the two org.json builds
     * did (M = Maven Central org.json 20250107, A = Android's own, AOSP).
     */
    @Test
    void agreesWithPythonWhereOrgJsonDoesNot() {
        Object err = new Object();
        Object[][] cases = {
            {"{\"a\": 1}", 1.0},
            {"{\"a\": 0.1307}", 0.1307}, // M: BigDecimal
            {"{\"a\": 1e400}", Double.POSITIVE_INFINITY}, // M: BigDecimal 1E+400, A: error
            {"{\"a\": 12345678901234567890}", 1.2345678901234567E19}, // M: BigInteger
            {"{\"a\": 1, \"a\": 2}", 2.0}, // M: NullPointerException
            {"{\"a\": NaN}", err}, // M: the string "NaN"; Python reads NaN but FORMAT.md (RFC 8259) does not
            {"{\"a\": \"\\ud800\"}", err}, // M, A: "?"; Python's reader rejects lone surrogates
            {"{\"a\": \"\\udc00\"}", err},
            {"{\"a\": \"\\ud83d\\ude00\"}", "\ud83d\ude00"}, // a pair is one character
            {"{a: 1}", err}, // M, A: {"a": 1}
            {"{\"a\": b}", err}, // M, A: {"a": "b"}
            {"{'a': 1}", err}, // M, A: {"a": 1}
            {"{\"a\": 1,}", err}, // M: NullPointerException
            {"[1,]", err}, // M: NullPointerException, A: [1, null]
            {"[1,,2]", err}, // A: [1, null, 2]
            {"{\"a\" = 1}", err}, // A: {"a": 1}
            {"{\"a\" => 1}", err}, // A: {"a": 1}
            {"{\"a\": 1; \"b\": 2}", err}, // M: NullPointerException, A: {"a": 1, "b": 2}
            {"{\"a\": 1} /* c */", err},
            {"{\"a\": 1} x", err}, // M, A: ignore what follows the value
            {"{\"a\": 01}", err}, // M: "01", A: 1
            {"{\"a\": .5}", err}, // M: ".5", A: 0.5
            {"{\"a\": +1}", err}, // M: "+1", A: 1
            {"{\"a\": \"tab\tin\"}", err}, // M, A: accepted
        };
        for (Object[] c : cases) {
            String text = (String) c[0];
            if (c[1] == err) {
                assertThrows(IllegalArgumentException.class, () -> Json.parse(text), text);
            } else {
                Object got = Json.parseObject(text).get("a");
                assertEquals(c[1], got, text);
            }
        }
        assertEquals(List.of(), Json.parse("[]"));
        assertEquals(Map.of(), Json.parse(" {} "));
        assertThrows(IllegalArgumentException.class, () -> Json.parse("-Infinity"));
    }

    @Test
    void modelMetadataKeepsIntegersApart() {
        // FORMAT.md: an integer is a number without fraction or exponent; 3.0 is not one.
        Map<?, ?> m = (Map<?, ?>) Json.parseWithLongs("{\"a\": 3, \"b\": 3.0, \"c\": 1e2, \"d\": -12345678901234567890}", 8);
        assertEquals(3L, m.get("a"));
        assertEquals(3.0, m.get("b"));
        assertEquals(100.0, m.get("c"));
        assertEquals(-1.2345678901234567E19, m.get("d"));
        assertEquals(3.0, Json.parseObject("{\"a\": 3}").get("a"), "plain parse: every number a Double, as before");
    }

    private static String repeat(String s, int n) {
        return String.valueOf(s).repeat(n);
    }

    @Test
    void nestsWithoutRecursion() {
        // 100,000 levels: the old recursive parser overflowed the stack here.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(repeat("[", 100_000)));
        assertEquals("JSON: nested deeper than 64 levels at character 65", e.getMessage());
        Object v = Json.parse(repeat("[", 100_000) + repeat("]", 100_000), 100_000);
        for (int i = 0; i < 99_999; i++) {
            v = ((List<?>) v).get(0);
        }
        assertEquals(List.of(), v);
        Object o = Json.parse(repeat("{\"k\": ", 50_000) + "7" + repeat("}", 50_000), 50_000);
        for (int i = 0; i < 50_000; i++) {
            o = ((Map<?, ?>) o).get("k");
        }
        assertEquals(7.0, o);
        assertThrows(IllegalArgumentException.class, () -> Json.parse(repeat("[", 64) + repeat("]", 64), 63));
    }
}
