package dev.vqexport.demo.core;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;

/** Writes a results file whole or not at all: a reader never sees half a JSON document. */
public final class ResultsFile {
    private ResultsFile() {
    }

    /**
     * Writes {@code text} to a temporary file beside {@code target}, syncs it, then renames it over
     * the target (atomic within one file system). Refuses a target that exists and is not a
     * regular file.
     */
    public static void writeAtomic(File target, String text) throws IOException {
        if (target.exists() && !target.isFile()) {
            throw new IOException(target + " exists and is not a regular file; not replacing it");
        }
        File dir = target.getAbsoluteFile().getParentFile();
        File tmp = new File(dir, "." + target.getName() + ".tmp");
        FileOutputStream os = new FileOutputStream(tmp);
        boolean ok = false;
        try {
            os.write(text.getBytes("UTF-8"));
            os.getFD().sync();
            ok = true;
        } finally {
            os.close();
            if (!ok && !tmp.delete()) {
                tmp.deleteOnExit();
            }
        }
        if (!tmp.renameTo(target)) {
            if (!tmp.delete()) {
                tmp.deleteOnExit();
            }
            throw new IOException("cannot rename " + tmp + " to " + target);
        }
    }
}
