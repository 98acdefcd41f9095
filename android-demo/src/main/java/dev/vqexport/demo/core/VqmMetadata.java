package dev.vqexport.demo.core;

import dev.vqexport.demo.core.VqmException.Kind;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The schema of a .vqm's metadata JSON (FORMAT.md "Metadata"). Readers ignore unknown keys, but
 * a key the table lists must have the type it lists, and names that point into the tensor table
 * ("layers", "skipped") must name tensors the file has: code downstream indexes by them.
 */
final class VqmMetadata {
    private VqmMetadata() {
    }

    /** A short name of a JSON value's type, for messages. */
    static String describe(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof String) {
            return "a string";
        }
        if (v instanceof Number) {
            return "a number";
        }
        if (v instanceof Boolean) {
            return "a boolean";
        }
        if (v instanceof List) {
            return "an array";
        }
        return v instanceof Map ? "an object" : v.getClass().getSimpleName();
    }

    private static VqmException bad(VqmReader rd, String key, String want, Object got) {
        return rd.fail(Kind.INVALID, "metadata \"" + key + "\" must be " + want + ", is " + describe(got));
    }

    private static void string(Map<?, ?> m, String key, String path, boolean nullable, VqmReader rd) throws VqmException {
        Object v = m.get(key);
        if (m.containsKey(key) && !(v instanceof String) && !(nullable && v == null)) {
            throw bad(rd, path + key, nullable ? "a string or null" : "a string", v);
        }
    }

    private static Map<?, ?> object(Map<?, ?> m, String key, String path, boolean nullable, VqmReader rd) throws VqmException {
        Object v = m.get(key);
        if (!m.containsKey(key) || (nullable && v == null)) {
            return null;
        }
        if (!(v instanceof Map)) {
            throw bad(rd, path + key, nullable ? "an object or null" : "an object", v);
        }
        return (Map<?, ?>) v;
    }

    private static List<?> list(Map<?, ?> m, String key, String path, boolean nullable, VqmReader rd) throws VqmException {
        Object v = m.get(key);
        if (!m.containsKey(key) || (nullable && v == null)) {
            return null;
        }
        if (!(v instanceof List)) {
            throw bad(rd, path + key, nullable ? "an array or null" : "an array", v);
        }
        return (List<?>) v;
    }

    /** FORMAT.md: a number without fraction or exponent, |v| &le; 2^53 (Json.parseWithLongs gives those as Long). */
    static boolean isInteger(Object v) {
        return (v instanceof Long || v instanceof Integer) && Math.abs(((Number) v).longValue()) <= (1L << 53);
    }

    private static boolean isFinite(Object v) {
        return v instanceof Number && !Double.isNaN(((Number) v).doubleValue())
                && !Double.isInfinite(((Number) v).doubleValue());
    }

    private static void number(Map<?, ?> m, String key, String path, boolean integer, VqmReader rd) throws VqmException {
        Object v = m.get(key);
        if (m.containsKey(key) && v != null && !(integer ? isInteger(v) : isFinite(v))) {
            throw bad(rd, path + key, integer ? "an integer or null" : "a finite number or null", v);
        }
    }

    private static void listOf(List<?> l, String path, String want, VqmReader rd, Class<?> type, boolean positiveInt)
            throws VqmException {
        if (l == null) {
            return;
        }
        for (Object o : l) {
            boolean ok = positiveInt ? isInteger(o) && ((Number) o).doubleValue() >= 1 : type.isInstance(o)
                    && (!(o instanceof Number) || isFinite(o));
            if (!ok) {
                throw bad(rd, path, want, l.isEmpty() ? null : o);
            }
        }
    }

    /** Types of the keys FORMAT.md lists (and "skipped", "summary", which the writer adds). */
    static void checkTypes(Map<String, Object> meta, VqmReader rd) throws VqmException {
        string(meta, "format", "", false, rd);
        string(meta, "producer", "", false, rd);
        Map<?, ?> source = object(meta, "source", "", true, rd);
        if (source != null) {
            for (String k : new String[] {"name", "sha256", "kind", "arch"}) {
                string(source, k, "source.", true, rd);
            }
        }
        Map<?, ?> config = object(meta, "config", "", true, rd);
        if (config != null) {
            string(config, "method", "config.", false, rd);
            string(config, "codebook_dtype", "config.", true, rd);
            for (String k : new String[] {"k", "d", "stages", "rank", "seed"}) {
                number(config, k, "config.", true, rd);
            }
            Object rows = config.get("rows");
            if (rows != null && !(rows instanceof Boolean)) {
                throw bad(rd, "config.rows", "a boolean", rows);
            }
            listOf(list(config, "layers", "config.", true, rd), "config.layers", "an array of strings", rd, String.class, false);
            object(config, "overrides", "config.", true, rd);
        }
        Map<?, ?> layers = object(meta, "layers", "", false, rd); // not null: code indexes into it
        if (layers != null) {
            for (Map.Entry<?, ?> e : layers.entrySet()) {
                String p = "layers." + e.getKey();
                if (!(e.getValue() instanceof Map)) {
                    throw bad(rd, p, "an object", e.getValue());
                }
                Map<?, ?> l = (Map<?, ?>) e.getValue();
                string(l, "method", p + ".", false, rd);
                listOf(list(l, "shape", p + ".", true, rd), p + ".shape", "an array of positive integers", rd, Number.class, true);
                for (String k : new String[] {"bits_per_weight", "compression", "rel_error"}) {
                    number(l, k, p + ".", false, rd);
                }
            }
        }
        Map<?, ?> skipped = object(meta, "skipped", "", false, rd);
        if (skipped != null) {
            for (Map.Entry<?, ?> e : skipped.entrySet()) {
                if (!(e.getValue() instanceof String)) {
                    throw bad(rd, "skipped." + e.getKey(), "a string (the reason)", e.getValue());
                }
            }
        }
        Map<?, ?> tied = object(meta, "tied", "", true, rd);
        if (tied != null) {
            for (Map.Entry<?, ?> e : tied.entrySet()) {
                if (!(e.getValue() instanceof String)) {
                    throw bad(rd, "tied." + e.getKey(), "a string (the stored tensor's name)", e.getValue());
                }
            }
        }
        listOf(list(meta, "labels", "", true, rd), "labels", "an array of strings", rd, String.class, false);
        Map<?, ?> input = object(meta, "input", "", true, rd);
        if (input != null) {
            listOf(list(input, "shape", "input.", true, rd), "input.shape", "an array of positive integers", rd, Number.class, true);
            string(input, "layout", "input.", true, rd);
            listOf(list(input, "mean", "input.", true, rd), "input.mean", "an array of finite numbers", rd, Number.class, false);
            listOf(list(input, "std", "input.", true, rd), "input.std", "an array of finite numbers", rd, Number.class, false);
        }
        Map<?, ?> summary = object(meta, "summary", "", true, rd);
        if (summary != null) {
            for (Map.Entry<?, ?> e : summary.entrySet()) {
                number(summary, String.valueOf(e.getKey()), "summary.", false, rd);
            }
        }
    }

    /**
     * "layers" and "skipped" name tensors of the table: compressed ones and raw ones, in that order;
     * "tied" maps an alias that is not stored to a name that is.
     */
    static void checkNames(Map<String, Object> meta, List<VqmTensor> tensors, VqmReader rd) throws VqmException {
        Map<String, VqmTensor> byName = new HashMap<String, VqmTensor>();
        for (VqmTensor t : tensors) {
            byName.put(t.name, t);
        }
        Object layers = meta.get("layers");
        if (layers instanceof Map) {
            for (Object name : ((Map<?, ?>) layers).keySet()) {
                VqmTensor t = byName.get(name);
                if (t == null || t.method == 0) {
                    throw rd.fail(Kind.INVALID, "metadata \"layers\" names " + name + ", which is not a compressed tensor of the file");
                }
            }
        }
        Object skipped = meta.get("skipped");
        if (skipped instanceof Map) {
            for (Object name : ((Map<?, ?>) skipped).keySet()) {
                VqmTensor t = byName.get(name);
                if (t == null || t.method != 0) {
                    throw rd.fail(Kind.INVALID, "metadata \"skipped\" names " + name + ", which is not a raw tensor of the file");
                }
            }
        }
        Object tied = meta.get("tied");
        if (tied instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) tied).entrySet()) {
                if (byName.containsKey(e.getKey()) || !byName.containsKey(e.getValue())) {
                    throw rd.fail(Kind.INVALID, "metadata \"tied\" maps " + e.getKey() + " to " + e.getValue()
                            + ": the alias must not be stored, its target must be");
                }
            }
        }
    }
}
