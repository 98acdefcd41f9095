package dev.vqexport.demo.core;

import java.io.IOException;

/** A .vqm file that is corrupt, truncated or of another version; the message names the file. */
public final class VqmException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The error kinds of docs/FORMAT.md "Errors"; the Python reader's messages map onto them. */
    public enum Kind {
        /** Fewer than 64 bytes or a wrong magic: "not a .vqm file". */
        NOT_VQM,
        /** A major version other than 1: "unsupported .vqm version". */
        VERSION,
        /** file_size in the header differs from the real size: "truncated". */
        TRUNCATED,
        /** A crc32 mismatch: "checksum mismatch in &lt;region&gt;". */
        CHECKSUM,
        /** A region or section outside the file, misaligned, or overlapping another. */
        BOUNDS,
        /** Anything else the spec rejects: bad codes, lengths, layouts, indices &ge; k, bad JSON. */
        INVALID
    }

    private final Kind kind;

    public VqmException(Kind kind, String file, String message) {
        super(oneLine(file + ": " + message));
        this.kind = kind;
    }

    /** The longest message: tensor names and JSON keys come from the file and can be 64 KiB. */
    static final int MAX_MESSAGE = 400;

    /**
     * {@code s} as one printable line of at most MAX_MESSAGE characters: names taken from a file
     * may hold line breaks or control characters, which would split or garble a one-line error.
     */
    public static String oneLine(String s) {
        StringBuilder b = new StringBuilder(Math.min(s.length(), MAX_MESSAGE + 8));
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7F || c == 0x85 || c == 0x2028 || c == 0x2029) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (b.length() > MAX_MESSAGE) {
            int half = (MAX_MESSAGE - 5) / 2;
            return b.substring(0, half) + " ... " + b.substring(b.length() - half);
        }
        return b.toString();
    }

    public Kind kind() {
        return kind;
    }
}
