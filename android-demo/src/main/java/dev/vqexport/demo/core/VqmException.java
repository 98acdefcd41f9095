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
        super(file + ": " + message);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
