package dev.vqexport.demo.core;

/**
 * The resource caps a reader applies before it decodes anything (the Python reader uses the same
 * defaults). A crafted file can declare far more weights than it carries (PQ with k=2 and d=n
 * describes a 32 GiB matrix in 528 KB), so the decoded size is checked against an absolute cap
 * and against a multiple of the file's own size. A caller that trusts a big model raises them.
 */
public final class VqmLimits {
    /** 4 GiB of decoded float32. */
    public static final long DEFAULT_MAX_DECODED_BYTES = 4L << 30;
    /** Decoded bytes per file byte: 1-bit kmeans reaches 32, real PQ/RQ files a few hundred. */
    public static final long DEFAULT_MAX_RATIO = 4096;
    /** Metadata JSON: labels and configs are kilobytes; the parsed form takes several times this. */
    public static final long DEFAULT_MAX_METADATA_BYTES = 16L << 20;
    /** JSON nesting: the writer's deepest object (config.overrides) is 3 levels down. */
    public static final int DEFAULT_MAX_JSON_DEPTH = 64;

    public static final VqmLimits DEFAULT = new VqmLimits(DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_RATIO);

    public final long maxDecodedBytes;
    public final long maxRatio;
    public final long maxMetadataBytes;
    public final int maxJsonDepth;

    public VqmLimits(long maxDecodedBytes, long maxRatio) {
        this(maxDecodedBytes, maxRatio, DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_JSON_DEPTH);
    }

    public VqmLimits(long maxDecodedBytes, long maxRatio, long maxMetadataBytes, int maxJsonDepth) {
        if (maxDecodedBytes < 0 || maxRatio < 1 || maxMetadataBytes < 0 || maxJsonDepth < 1) {
            throw new IllegalArgumentException("limits must be positive");
        }
        this.maxDecodedBytes = maxDecodedBytes;
        this.maxRatio = maxRatio;
        this.maxMetadataBytes = maxMetadataBytes;
        this.maxJsonDepth = maxJsonDepth;
    }

    /** The decoded bytes a file of {@code fileSize} bytes may describe: the smaller of both caps. */
    public long allowedFor(long fileSize) {
        long byRatio = fileSize > Long.MAX_VALUE / maxRatio ? Long.MAX_VALUE : fileSize * maxRatio;
        return Math.min(maxDecodedBytes, byRatio);
    }

    /** The same sentence for every reader: what was asked, which cap, how to raise it. */
    String overMessage(long decoded, long fileSize) {
        long allowed = allowedFor(fileSize);
        String which = allowed == maxDecodedBytes
                ? "the cap of " + maxDecodedBytes + " bytes"
                : maxRatio + " x the " + fileSize + "-byte file";
        return "declares " + decoded + " bytes of decoded float32 weights, over " + which
                + " (raise the limit with VqmLimits if the file is trusted)";
    }
}
