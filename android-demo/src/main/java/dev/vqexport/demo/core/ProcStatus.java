package dev.vqexport.demo.core;

import java.io.BufferedReader;
import java.io.FileReader;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;

/** The memory lines of /proc/self/status (VmHWM, VmRSS, RssAnon, ...) in kB. */
public final class ProcStatus {
    private ProcStatus() {
    }

    /** Parses lines such as "VmHWM:\t  12345 kB" into name -> kB; other lines are skipped. */
    public static Map<String, Long> parse(String text) {
        Map<String, Long> out = new LinkedHashMap<String, Long>();
        for (String line : text.split("\n")) {
            int colon = line.indexOf(':');
            if (colon <= 0) {
                continue;
            }
            String key = line.substring(0, colon).trim();
            String rest = line.substring(colon + 1).trim();
            if (!rest.endsWith(" kB")) {
                continue;
            }
            try {
                out.put(key, Long.parseLong(rest.substring(0, rest.length() - 3).trim()));
            } catch (NumberFormatException e) {
                // not a memory line
            }
        }
        return out;
    }

    /** Reads /proc/self/status; an empty map where there is none (not Linux). */
    public static Map<String, Long> readSelf() {
        StringBuilder b = new StringBuilder();
        try {
            BufferedReader r = new BufferedReader(new FileReader("/proc/self/status"));
            try {
                String line;
                while ((line = r.readLine()) != null) {
                    b.append(line).append('\n');
                }
            } finally {
                r.close();
            }
        } catch (IOException e) {
            return new LinkedHashMap<String, Long>();
        }
        return parse(b.toString());
    }
}
