package dev.vqexport.demo.core;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON for the app: reading through {@link JsonParser} (strict, as Python's json.loads, and
 * without recursion) and a small writer for results.json.
 *
 * <p>Why not org.json, which Android ships: measured on 23 inputs (the table is in
 * JsonTest.agreesWithPythonWhereOrgJsonDoesNot), Maven Central's org.json 20250107 and Android's
 * own (AOSP, the same as com.vaadin.external.google:android-json) disagree on 14; Maven's throws
 * NullPointerException on a repeated key or a trailing comma, both accept unquoted strings,
 * single quotes and comments that Python rejects, and both recurse (100,000 '[' overflow the
 * stack). A wrapper would need a strict lexer in front of them, which is most of a parser.
 *
 * <p>Parsing gives LinkedHashMap (objects, key order kept), ArrayList (arrays), String, Double
 * (every number), Boolean and null. Writing accepts those plus any Number, int[], float[],
 * double[] and long[].
 */
public final class Json {
    /** Nesting accepted by {@link #parse(String)}: the deepest file the writers make is 4 levels. */
    public static final int DEFAULT_MAX_DEPTH = VqmLimits.DEFAULT_MAX_JSON_DEPTH;

    private Json() {
    }

    /** Parses one JSON value that must fill the whole text, nested at most DEFAULT_MAX_DEPTH deep. */
    public static Object parse(String text) {
        return JsonParser.parse(text, DEFAULT_MAX_DEPTH, false);
    }

    /** The same with a chosen nesting limit. */
    public static Object parse(String text, int maxDepth) {
        return JsonParser.parse(text, maxDepth, false);
    }

    /**
     * For model metadata: integer literals (no fraction, no exponent, at most 18 digits) come back
     * as Long, so that a schema can tell 3 from 3.0 as FORMAT.md and the Python reader do.
     */
    public static Object parseWithLongs(String text, int maxDepth) {
        return JsonParser.parse(text, maxDepth, true);
    }

    /** Parses a JSON object; anything else is an error. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        Object v = parse(text);
        if (!(v instanceof Map)) {
            throw new IllegalArgumentException("JSON: expected an object at the top level");
        }
        return (Map<String, Object>) v;
    }

    // ---------------------------------------------------------------- writing

    /** Writes a value as JSON; indent > 0 pretty-prints with that many spaces. */
    public static String write(Object v, int indent) {
        StringBuilder b = new StringBuilder();
        write(b, v, indent, 0);
        return b.toString();
    }

    private static void newline(StringBuilder b, int indent, int level) {
        if (indent > 0) {
            b.append('\n');
            for (int i = 0; i < indent * level; i++) {
                b.append(' ');
            }
        }
    }

    private static void write(StringBuilder b, Object v, int indent, int level) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof String) {
            quote(b, (String) v);
        } else if (v instanceof Boolean) {
            b.append(v.toString());
        } else if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                b.append("null"); // JSON has no NaN; null says "not measured"
            } else if (d == Math.rint(d) && Math.abs(d) < 1e15) {
                b.append((long) d);
            } else {
                b.append(d);
            }
        } else if (v instanceof Number) {
            b.append(((Number) v).longValue());
        } else if (v instanceof Map) {
            Map<?, ?> m = (Map<?, ?>) v;
            b.append('{');
            Iterator<? extends Map.Entry<?, ?>> it = m.entrySet().iterator();
            boolean first = true;
            while (it.hasNext()) {
                Map.Entry<?, ?> e = it.next();
                if (!first) {
                    b.append(',');
                }
                first = false;
                newline(b, indent, level + 1);
                quote(b, String.valueOf(e.getKey()));
                b.append(indent > 0 ? ": " : ":");
                write(b, e.getValue(), indent, level + 1);
            }
            if (!first) {
                newline(b, indent, level);
            }
            b.append('}');
        } else if (v instanceof Iterable) {
            writeList(b, (Iterable<?>) v, indent, level);
        } else if (v instanceof int[]) {
            List<Object> l = new ArrayList<Object>();
            for (int x : (int[]) v) {
                l.add(x);
            }
            writeList(b, l, 0, level);
        } else if (v instanceof long[]) {
            List<Object> l = new ArrayList<Object>();
            for (long x : (long[]) v) {
                l.add(x);
            }
            writeList(b, l, 0, level);
        } else if (v instanceof float[]) {
            List<Object> l = new ArrayList<Object>();
            for (float x : (float[]) v) {
                l.add((double) x);
            }
            writeList(b, l, 0, level);
        } else if (v instanceof double[]) {
            List<Object> l = new ArrayList<Object>();
            for (double x : (double[]) v) {
                l.add(x);
            }
            writeList(b, l, 0, level);
        } else {
            quote(b, v.toString());
        }
    }

    private static void writeList(StringBuilder b, Iterable<?> items, int indent, int level) {
        b.append('[');
        boolean first = true;
        boolean nested = false;
        for (Object o : items) {
            if (!first) {
                b.append(indent > 0 && !(o instanceof Map) ? ", " : ",");
            }
            first = false;
            if (o instanceof Map && indent > 0) {
                // Objects in a list (the results) each get their own indented block.
                nested = true;
                newline(b, indent, level + 1);
                write(b, o, indent, level + 1);
            } else {
                write(b, o, 0, level + 1); // numbers and strings stay on one line
            }
        }
        if (nested) {
            newline(b, indent, level);
        }
        b.append(']');
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        b.append('"');
    }
}
