package dev.vqexport.demo.core;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Whether TFLite applied its XNNPACK delegate, read from what the runtime logs while it builds an
 * interpreter (the Java API has no call that says so):
 * "Created TensorFlow Lite XNNPACK delegate for CPU." and
 * "Replacing 7 out of 7 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions".
 */
public final class TfliteLog {
    private static final Pattern REPLACING = Pattern.compile(
            "Replacing (\\d+) out of (\\d+) node\\(s\\) with delegate \\(([^)]*)\\) node, yielding (\\d+) partitions");

    private TfliteLog() {
    }

    /**
     * From the log lines of one interpreter build: "applied" (true when XNNPACK took at least one
     * node, false when the log shows the delegate was not used, null when the log says nothing),
     * and when known "delegated_nodes", "total_nodes", "partitions" (summed over subgraphs).
     */
    public static Map<String, Object> xnnpack(String log) {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        boolean created = log != null && log.contains("Created TensorFlow Lite XNNPACK delegate");
        long delegated = 0;
        long total = 0;
        long partitions = 0;
        boolean replaced = false;
        if (log != null) {
            Matcher mt = REPLACING.matcher(log);
            while (mt.find()) {
                if (mt.group(3).contains("XNNPack") || mt.group(3).contains("XNNPACK")) {
                    replaced = true;
                    delegated += Long.parseLong(mt.group(1));
                    total += Long.parseLong(mt.group(2));
                    partitions += Long.parseLong(mt.group(4));
                }
            }
        }
        boolean failed = log != null && log.contains("Failed to apply the default TensorFlow Lite delegate");
        if (replaced) {
            m.put("applied", delegated > 0 && !failed);
            m.put("delegated_nodes", delegated);
            m.put("total_nodes", total);
            m.put("partitions", partitions);
        } else if (failed || created) {
            // created but no node taken, or refused outright: the model runs on the reference kernels
            m.put("applied", false);
        } else {
            m.put("applied", null);
        }
        m.put("delegate_created", created);
        return m;
    }
}
