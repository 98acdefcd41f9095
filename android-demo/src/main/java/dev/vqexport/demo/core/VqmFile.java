package dev.vqexport.demo.core;

import java.util.Collections;
import java.util.List;
import java.util.Map;

/** A parsed, validated .vqm file: its metadata and its tensors (decoded on demand). */
public final class VqmFile {
    public final String name;
    /** 1 or 2: a file is written at the lowest version that holds it (vqexport/formats/vqm.py). */
    public final int versionMajor;
    public final int versionMinor;
    public final Map<String, Object> metadata;
    public final List<VqmTensor> tensors;
    public final long fileSize;

    VqmFile(String name, int versionMajor, int versionMinor, Map<String, Object> metadata, List<VqmTensor> tensors, long fileSize) {
        this.name = name;
        this.versionMajor = versionMajor;
        this.versionMinor = versionMinor;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = Collections.unmodifiableList(tensors);
        this.fileSize = fileSize;
    }

    public VqmTensor get(String tensorName) {
        for (VqmTensor t : tensors) {
            if (t.name.equals(tensorName)) {
                return t;
            }
        }
        throw new IllegalArgumentException(name + ": no tensor " + tensorName);
    }

    /** Decodes every tensor once and returns the number of decoded elements (for the benchmark). */
    public long decodeAll() {
        long n = 0;
        for (VqmTensor t : tensors) {
            n += t.method == 0 ? t.rawBytes().length / Math.max(1, VqmTensor.ITEMSIZE[t.sections.get("raw").dtype])
                    : t.decode().length;
        }
        return n;
    }

    /** The "input" metadata object, or null when absent. */
    @SuppressWarnings("unchecked")
    public Map<String, Object> input() {
        Object v = metadata.get("input");
        return v instanceof Map ? (Map<String, Object>) v : null;
    }
}
