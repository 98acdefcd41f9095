package dev.vqexport.demo.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The app's launch arguments (intent extras), checked: {@code --es models a.tflite,b.vqm} (or
 * "all"), and the integers runs, min_ms, warmup, threads, max_eval, cooldown_ms. Every problem is
 * one line in {@link #errors}; the app then writes one error row per requested model instead of
 * measuring, and still writes its results file and its DONE line.
 */
public final class BenchArgs {
    /** An integer extra: its name, range and what it sets. */
    private static final String[][] INTS = {
        // name, min, max
        {"runs", "1", "1000000"},
        {"min_ms", "0", "3600000"},
        {"warmup", "0", "100000"},
        {"threads", "1", "64"},
        {"max_eval", "0", "1000000"},
        {"cooldown_ms", "0", "3600000"},
    };
    public static final List<String> KNOWN;

    static {
        List<String> k = new ArrayList<String>();
        k.add("models");
        for (String[] i : INTS) {
            k.add(i[0]);
        }
        KNOWN = Collections.unmodifiableList(k);
    }

    public final Bench.Settings settings = new Bench.Settings();
    /** Pause between two models of one launch, in ms. */
    public long cooldownMillis;
    /** Null when no "models" extra was given (an interactive launch); empty for "all". */
    public List<String> models;
    public final List<String> errors = new ArrayList<String>();
    /** Extras this app does not know (a typo, or a launcher's own): reported, not used. */
    public final List<String> ignored = new ArrayList<String>();

    private BenchArgs() {
    }

    /** Checks the extras; never throws for any value in the map. */
    public static BenchArgs parse(Map<String, Object> extras) {
        BenchArgs a = new BenchArgs();
        if (extras == null) {
            return a;
        }
        for (String key : new TreeSet<String>(extras.keySet())) {
            if (!KNOWN.contains(key)) {
                a.ignored.add(key);
            }
        }
        if (extras.containsKey("models")) {
            a.models = parseModels(extras.get("models"), a.errors);
        }
        for (String[] spec : INTS) {
            if (!extras.containsKey(spec[0])) {
                continue;
            }
            Long v = parseInt(spec[0], extras.get(spec[0]), Long.parseLong(spec[1]), Long.parseLong(spec[2]), a.errors);
            if (v != null) {
                a.set(spec[0], v);
            }
        }
        return a;
    }

    private void set(String name, long v) {
        if ("runs".equals(name)) {
            settings.minRuns = (int) v;
        } else if ("min_ms".equals(name)) {
            settings.minMillis = v;
        } else if ("warmup".equals(name)) {
            settings.warmup = (int) v;
        } else if ("threads".equals(name)) {
            settings.threads = (int) v;
        } else if ("max_eval".equals(name)) {
            settings.maxEval = (int) v;
        } else if ("cooldown_ms".equals(name)) {
            cooldownMillis = v;
        }
    }

    private static Long parseInt(String name, Object v, long min, long max, List<String> errors) {
        long n;
        if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
            n = ((Number) v).longValue();
        } else {
            errors.add("extra " + name + " must be an integer (--ei " + name + " N), got " + describe(v));
            return null;
        }
        if (n < min || n > max) {
            errors.add("extra " + name + " must be in " + min + ".." + max + ", got " + n);
            return null;
        }
        return n;
    }

    private static List<String> parseModels(Object v, List<String> errors) {
        if (!(v instanceof String)) {
            errors.add("extra models must be a string (--es models a.tflite,b.vqm or all), got " + describe(v));
            return Collections.emptyList();
        }
        String s = ((String) v).trim();
        if (s.isEmpty()) {
            errors.add("extra models is empty: name model files, comma-separated, or all");
            return Collections.emptyList();
        }
        if ("all".equals(s)) {
            return Collections.emptyList();
        }
        List<String> out = new ArrayList<String>();
        for (String part : s.split(",", -1)) {
            String n = part.trim();
            if (n.isEmpty()) {
                errors.add("extra models has an empty name in \"" + s + "\"");
            } else if (n.contains("/") || n.contains("\\") || n.equals(".") || n.equals("..")) {
                errors.add("extra models: \"" + n + "\" is not a plain file name (no folders)");
            } else if (Bench.format(n) == null) {
                errors.add("extra models: \"" + n + "\" is not a .tflite, .onnx or .vqm file");
            } else if (!out.contains(n)) {
                out.add(n);
            }
        }
        return out;
    }

    private static String describe(Object v) {
        if (v == null) {
            return "no value";
        }
        String text = v instanceof Object[] ? Arrays.toString((Object[]) v) : String.valueOf(v);
        if (text.length() > 60) {
            text = text.substring(0, 60) + "...";
        }
        return v.getClass().getSimpleName() + " \"" + text + "\"";
    }

    /** All errors in one line, or null when there are none. */
    public String errorLine() {
        if (errors.isEmpty()) {
            return null;
        }
        StringBuilder b = new StringBuilder("bad intent extras: ");
        for (int i = 0; i < errors.size(); i++) {
            b.append(i == 0 ? "" : "; ").append(errors.get(i));
        }
        return b.toString();
    }
}
