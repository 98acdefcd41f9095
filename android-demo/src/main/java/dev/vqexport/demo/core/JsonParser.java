package dev.vqexport.demo.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON parser without recursion: nesting lives on an explicit stack, bounded by
 * {@code maxDepth}, so no input can overflow the thread's stack. It reads RFC 8259 JSON as
 * the Python reader does (docs/FORMAT.md "Metadata"): no NaN or Infinity, no lone surrogate
 * escapes, no raw control characters in strings, no leading zeros, comments or single quotes; a
 * repeated key keeps its last value, as in Python. Neither org.json can stand in for it: both recurse, both
 * are lenient (unquoted strings, comments, ';' or '=' separators), and the two disagree with each
 * other (Maven's throws NullPointerException on a repeated key; Android's turns "[1,]" into
 * [1, null]), so tests on the JVM would not test what runs on the phone (see the report in the
 * Json class comment).
 *
 * <p>Gives LinkedHashMap (key order kept), ArrayList, String, Double (every number, or Long for
 * a literal without fraction or exponent when {@code longs} is set: what FORMAT.md calls an
 * integer), Boolean and null; errors are IllegalArgumentException with the character position.
 */
final class JsonParser {
    private final String s;
    private final int maxDepth;
    private final boolean longs;
    private int pos;

    private JsonParser(String s, int maxDepth, boolean longs) {
        this.s = s;
        this.maxDepth = maxDepth;
        this.longs = longs;
    }

    static Object parse(String text, int maxDepth, boolean longs) {
        JsonParser p = new JsonParser(text, maxDepth, longs);
        Object v = p.document();
        p.skipWs();
        if (p.pos != p.s.length()) {
            throw p.error("trailing characters after the JSON value");
        }
        return v;
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

    private char peek() {
        skipWs();
        if (pos >= s.length()) {
            throw error("unexpected end");
        }
        return s.charAt(pos);
    }

    private void expect(char c) {
        if (peek() != c) {
            throw error("expected '" + c + "'");
        }
        pos++;
    }

    /**
     * Containers still open are on {@code stack}; for an object, the key its next value belongs
     * to is on {@code keys}. Each turn reads one value; a finished value is added to the innermost
     * open container, and closing brackets finish containers, until the top-level value is done.
     */
    private Object document() {
        List<Object> stack = new ArrayList<Object>();
        List<String> keys = new ArrayList<String>();
        while (true) {
            char c = peek();
            Object v;
            if (c == '{' || c == '[') {
                pos++;
                if (stack.size() >= maxDepth) {
                    throw error("nested deeper than " + maxDepth + " levels");
                }
                boolean obj = c == '{';
                Object container = obj ? new LinkedHashMap<String, Object>() : new ArrayList<Object>();
                if (peek() != (obj ? '}' : ']')) {
                    stack.add(container);
                    if (obj) {
                        keys.add(key());
                    }
                    continue; // read its first value
                }
                pos++;
                v = container; // empty
            } else {
                v = scalar(c);
            }
            // Add v to the open containers, closing those that end here.
            while (true) {
                if (stack.isEmpty()) {
                    return v;
                }
                Object top = stack.get(stack.size() - 1);
                boolean obj = top instanceof Map;
                if (obj) {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> m = (Map<String, Object>) top;
                    m.put(keys.remove(keys.size() - 1), v);
                } else {
                    @SuppressWarnings("unchecked")
                    List<Object> l = (List<Object>) top;
                    l.add(v);
                }
                char next = peek();
                if (next == ',') {
                    pos++;
                    if (obj) {
                        keys.add(key());
                    }
                    break; // read the next value
                }
                expect(obj ? '}' : ']');
                stack.remove(stack.size() - 1);
                v = top;
            }
        }
    }

    private String key() {
        if (peek() != '"') {
            throw error("expected a string key");
        }
        String k = string();
        expect(':');
        return k;
    }

    private Object scalar(char c) {
        switch (c) {
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
                throw error("unexpected character '" + (c < 0x20 ? "\\u" + Integer.toHexString(c) : String.valueOf(c)) + "'");
        }
    }

    private Object literal(String word, Object v) {
        if (!s.startsWith(word, pos)) {
            throw error("bad literal");
        }
        pos += word.length();
        return v;
    }

    private int digits() {
        int start = pos;
        while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
            pos++;
        }
        return pos - start;
    }

    /** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, as RFC 8259 and Python read it. */
    private Number number() {
        int start = pos;
        boolean integer = true;
        if (s.charAt(pos) == '-') {
            pos++;
        }
        int intStart = pos;
        int n = digits();
        if (n == 0 || (n > 1 && s.charAt(intStart) == '0')) {
            throw error("bad number");
        }
        if (pos < s.length() && s.charAt(pos) == '.') {
            pos++;
            integer = false;
            if (digits() == 0) {
                throw error("bad number");
            }
        }
        if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
            pos++;
            integer = false;
            if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                pos++;
            }
            if (digits() == 0) {
                throw error("bad number");
            }
        }
        String text = s.substring(start, pos);
        if (longs && integer && pos - intStart <= 18) { // 18 digits always fit in a long
            return Long.valueOf(text);
        }
        return Double.valueOf(text);
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
            if (c < 0x20) {
                throw error("control character in a string");
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
                case 'u': {
                    char u = hex4();
                    if (Character.isLowSurrogate(u)) {
                        throw error("lone surrogate escape");
                    }
                    b.append(u);
                    if (Character.isHighSurrogate(u)) { // must pair with a low one: "\\ud83d\\ude00"
                        if (!s.startsWith("\\u", pos)) {
                            throw error("lone surrogate escape");
                        }
                        pos += 2;
                        char low = hex4();
                        if (!Character.isLowSurrogate(low)) {
                            throw error("lone surrogate escape");
                        }
                        b.append(low);
                    }
                    break;
                }
                default:
                    throw error("bad escape \\" + e);
            }
        }
    }

    private char hex4() {
        if (pos + 4 > s.length()) {
            throw error("short \\u escape");
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            int d = Character.digit(s.charAt(pos + i), 16);
            if (d < 0) {
                throw error("bad \\u escape");
            }
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }
}
