package dev.vqexport.demo;

import android.os.Process;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.util.concurrent.TimeUnit;

/** This process's own logcat lines (an app may read its own without any permission). */
final class OwnLog {
    private static final int MAX_CHARS = 1 << 20;

    private OwnLog() {
    }

    /** The text logged by this process after the last line containing {@code marker}; null if unreadable. */
    static String since(String marker) {
        java.lang.Process p = null;
        try {
            p = new ProcessBuilder("logcat", "-d", "-v", "raw", "--pid=" + Process.myPid())
                    .redirectErrorStream(true).start();
            StringBuilder b = new StringBuilder();
            InputStream is = p.getInputStream();
            Reader r = new InputStreamReader(is, "UTF-8");
            char[] buf = new char[8192];
            int n;
            while ((n = r.read(buf)) > 0) {
                b.append(buf, 0, n);
                if (b.length() > MAX_CHARS) {
                    b.delete(0, b.length() - MAX_CHARS); // keep the newest lines
                }
            }
            p.waitFor(5, TimeUnit.SECONDS);
            int at = b.lastIndexOf(marker);
            return at < 0 ? null : b.substring(at);
        } catch (Exception e) {
            return null;
        } finally {
            if (p != null) {
                p.destroy();
            }
        }
    }
}
