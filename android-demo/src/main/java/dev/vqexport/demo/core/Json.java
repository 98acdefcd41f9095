package dev.vqexport.demo.core;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON parser and writer. The app cannot use org.json on the JVM (android.jar only has
 * stubs there), and the core must run on both, so it carries its own.
 *
 * <p>Parsing gives LinkedHashMap (objects, key order kept), ArrayList (arrays), String, Double
 * (every number), Boolean and null. Writing accepts those plus any Number, int[], float[],
 * double[] and long[].
 */
public final class Json {
    private final String s;
    private int pos;

    private Json(String s) {
        this.s = s;
    }

    /** Parses one JSON value that must fill the whole text. */
    public static Object parse(String text) {
        Json p = new Json(text);
        p.skipWs();
        Object v = p.value();
        p.skipWs();
        if (p.pos != p.s.length()) {
            throw p.error("trailing characters after the JSON value");
        }
        return v;
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

    /**
     * Rejects text nested deeper than {@code maxDepth} arrays/objects, scanning it once without
     * recursion, so that no parser (this one or org.json, both recursive) ever sees it: 100,000
     * '[' would overflow their stacks. It also rejects the lenient syntax org.json accepts
     * (comments, single quotes) outside strings: those could hide brackets from this scan.
     */
    public static void checkDepth(String text, int maxDepth) {
        int depth = 0;
        boolean inString = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (inString) {
                if (c == '\\') {
                    i++;
                } else if (c == '"') {
                    inString = false;
                }
            } else if (c == '"') {
                inString = true;
            } else if (c == '\'' || c == '/' || c == '#' || c == '\\') {
                throw new IllegalArgumentException("JSON: unexpected character '" + c + "' at character " + i);
            } else if (c == '[' || c == '{') {
                if (++depth > maxDepth) {
                    throw new IllegalArgumentException("JSON: nested deeper than " + maxDepth + " levels at character " + i);
                }
            } else if ((c == ']' || c == '}') && --depth < 0) {
                throw new IllegalArgumentException("JSON: unbalanced '" + c + "' at character " + i);
            }
        }
    }

    private IllegalArgumentException error(String msg) {
        return new IllegalArgumentException("JSON: " + msg + " at character " + pos);
    }

    private void skipWs() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                break;
            }
            pos++;
        }
    }

    private Object value() {
        if (pos >= s.length()) {
            throw error("unexpected end");
        }
        char c = s.charAt(pos);
        switch (c) {
            case '{':
                return object();
            case '[':
                return array();
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", null);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw error("unexpected character '" + c + "'");
        }
    }

    private Object literal(String word, Object v) {
        if (!s.startsWith(word, pos)) {
            throw error("bad literal");
        }
        pos += word.length();
        return v;
    }

    private Map<String, Object> object() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        pos++;
        skipWs();
        if (pos < s.length() && s.charAt(pos) == '}') {
            pos++;
            return m;
        }
        while (true) {
            skipWs();
            if (pos >= s.length() || s.charAt(pos) != '"') {
                throw error("expected a string key");
            }
            String k = string();
            skipWs();
            expect(':');
            skipWs();
            m.put(k, value());
            skipWs();
            if (pos < s.length() && s.charAt(pos) == ',') {
                pos++;
                continue;
            }
            expect('}');
            return m;
        }
    }

    private List<Object> array() {
        List<Object> a = new ArrayList<Object>();
        pos++;
        skipWs();
        if (pos < s.length() && s.charAt(pos) == ']') {
            pos++;
            return a;
        }
        while (true) {
            skipWs();
            a.add(value());
            skipWs();
            if (pos < s.length() && s.charAt(pos) == ',') {
                pos++;
                continue;
            }
            expect(']');
            return a;
        }
    }

    private void expect(char c) {
        if (pos >= s.length() || s.charAt(pos) != c) {
            throw error("expected '" + c + "'");
        }
        pos++;
    }

    private String string() {
        StringBuilder b = new StringBuilder();
        pos++;
        while (true) {
            if (pos >= s.length()) {
                throw error("unterminated string");
            }
            char c = s.charAt(pos++);
            if (c == '"') {
                return b.toString();
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (pos >= s.length()) {
                throw error("unterminated escape");
            }
            char e = s.charAt(pos++);
            switch (e) {
                case '"': b.append('"'); break;
                case '\\': b.append('\\'); break;
                case '/': b.append('/'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'n': b.append('\n'); break;
                case 'r': b.append('\r'); break;
                case 't': b.append('\t'); break;
                case 'u':
                    if (pos + 4 > s.length()) {
                        throw error("short \\u escape");
                    }
                    try {
                        b.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                    } catch (NumberFormatException ex) {
                        throw error("bad \\u escape");
                    }
                    pos += 4;
                    break;
                default:
                    throw error("bad escape \\" + e);
            }
        }
    }

    private Double number() {
        int start = pos;
        while (pos < s.length() && "+-0123456789.eE".indexOf(s.charAt(pos)) >= 0) {
            pos++;
        }
        try {
            return Double.valueOf(s.substring(start, pos));
        } catch (NumberFormatException ex) {
            throw error("bad number");
        }
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
