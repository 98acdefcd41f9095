package dev.vqexport.demo.core;

import java.util.List;
import java.util.Map;

/**
 * How to feed a model: layout, shape and per-channel mean/std, read from the model's metadata
 * (.vqm "input"; ONNX metadata_props "vqexport" -> "input", or "input"; TFLite metadata buffer
 * "vqexport" -> "input"). Without metadata: MNIST's mean 0.1307 / std 0.3081, layout NHWC for
 * TFLite and NCHW otherwise, and {@link #warning} says so.
 */
public final class InputSpec {
    public static final float MNIST_MEAN = 0.1307f;
    public static final float MNIST_STD = 0.3081f;

    public final String layout;
    public final int[] shape;
    public final float[] mean;
    public final float[] std;
    /** "metadata" or "default". */
    public final String source;
    /** Non-null when the defaults were used: a line to log loudly. */
    public final String warning;

    public InputSpec(String layout, int[] shape, float[] mean, float[] std, String source, String warning) {
        if (!"NCHW".equals(layout) && !"NHWC".equals(layout)) {
            throw new IllegalArgumentException("input layout must be NCHW or NHWC, got " + layout);
        }
        if (mean.length == 0 || mean.length != std.length) {
            throw new IllegalArgumentException("input mean and std need the same, non-zero length");
        }
        for (float s : std) {
            if (!(s > 0)) {
                throw new IllegalArgumentException("input std must be > 0, got " + s);
            }
        }
        this.layout = layout;
        this.shape = shape;
        this.mean = mean;
        this.std = std;
        this.source = source;
        this.warning = warning;
    }

    /** The defaults for a format ("tflite" -> NHWC, else NCHW), with a warning naming the model. */
    public static InputSpec defaults(String format, String model) {
        boolean nhwc = "tflite".equals(format);
        return new InputSpec(nhwc ? "NHWC" : "NCHW", nhwc ? new int[] {1, 28, 28, 1} : new int[] {1, 1, 28, 28},
                new float[] {MNIST_MEAN}, new float[] {MNIST_STD}, "default",
                model + ": no vqexport input metadata; assuming " + (nhwc ? "NHWC" : "NCHW")
                        + ", mean " + MNIST_MEAN + ", std " + MNIST_STD);
    }

    /**
     * Reads a spec from a metadata JSON object: either the spec itself ({"shape", "layout", "mean",
     * "std"}) or an object holding it under "input". Returns null when there is none.
     */
    @SuppressWarnings("unchecked")
    public static InputSpec fromJson(Map<String, Object> obj) {
        if (obj == null) {
            return null;
        }
        Object inner = obj.get("input");
        if (inner instanceof Map) {
            obj = (Map<String, Object>) inner;
        } else if (!obj.containsKey("shape")) {
            return null;
        }
        int[] shape = ints(obj.get("shape"));
        String layout = obj.get("layout") instanceof String ? (String) obj.get("layout") : null;
        if (layout == null) {
            layout = "NCHW"; // the metadata's own default (FORMAT.md: "layout": "NCHW")
        }
        float[] mean = floats(obj.get("mean"));
        float[] std = floats(obj.get("std"));
        if (mean == null || std == null) {
            // No normalisation given: feed pixels in 0..1 unchanged.
            mean = new float[] {0f};
            std = new float[] {1f};
        }
        return new InputSpec(layout, shape, mean, std, "metadata", null);
    }

    /** fromJson on a JSON text; null for null or blank text, an error for text that is not JSON. */
    public static InputSpec fromJsonText(String text) {
        if (text == null || text.trim().isEmpty()) {
            return null;
        }
        Object v = Json.parse(text);
        if (!(v instanceof Map)) {
            return null;
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) v;
        return fromJson(m);
    }

    /** From ONNX metadata_props: key "vqexport" (an object holding "input"), else key "input". */
    public static InputSpec fromOnnxProps(Map<String, String> props) {
        InputSpec s = fromJsonText(props.get("vqexport"));
        return s != null ? s : fromJsonText(props.get("input"));
    }

    /** From a .tflite file's "vqexport" metadata buffer. */
    public static InputSpec fromTflite(byte[] model) {
        return fromTflite(java.nio.ByteBuffer.wrap(model));
    }

    /** From a .tflite model held in a (memory-mapped) buffer. */
    public static InputSpec fromTflite(java.nio.ByteBuffer model) {
        byte[] meta = TfliteMetadata.find(model, "vqexport");
        return meta == null ? null : fromJsonText(new String(meta, java.nio.charset.Charset.forName("UTF-8")));
    }

    private static int[] ints(Object v) {
        if (!(v instanceof List)) {
            return null;
        }
        List<?> l = (List<?>) v;
        int[] out = new int[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) l.get(i)).intValue();
        }
        return out;
    }

    private static float[] floats(Object v) {
        if (v instanceof Number) {
            return new float[] {((Number) v).floatValue()};
        }
        if (!(v instanceof List)) {
            return null;
        }
        List<?> l = (List<?>) v;
        float[] out = new float[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) l.get(i)).floatValue();
        }
        return out;
    }

    /**
     * Writes image {@code i} of the eval set into {@code out} as this spec's layout wants it:
     * (p / 255 - mean[c]) / std[c]. {@code out} holds exactly one image.
     */
    public void fill(EvalSet set, int i, float[] out) {
        int c = set.channels;
        int h = set.height;
        int w = set.width;
        if (out.length != c * h * w) {
            throw new IllegalArgumentException("model input holds " + out.length + " values, an eval image "
                    + c + "x" + h + "x" + w);
        }
        boolean nhwc = "NHWC".equals(layout);
        for (int ch = 0; ch < c; ch++) {
            float m = mean[Math.min(ch, mean.length - 1)];
            float s = std[Math.min(ch, std.length - 1)];
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    float v = (set.pixel(i, ch, y, x) / 255f - m) / s;
                    out[nhwc ? (y * w + x) * c + ch : (ch * h + y) * w + x] = v;
                }
            }
        }
    }

    /**
     * Why a model whose runtime input shape is {@code modelShape} cannot take the images of
     * {@code set} in this spec's layout, or null when it can. Accepted: a 4-d shape of batch 1 (or
     * a dynamic batch, -1) with the set's channels, height and width where the layout puts them,
     * or a 2-d [1, C*H*W] shape (a model that flattens its input itself).
     */
    public String mismatch(int[] modelShape, EvalSet set) {
        String img = set.channels + "x" + set.height + "x" + set.width + " (CxHxW)";
        String got = java.util.Arrays.toString(modelShape);
        if (modelShape == null || modelShape.length == 0) {
            return "the model reports no input shape; the eval images are " + img;
        }
        if (modelShape[0] != 1 && modelShape[0] != -1) {
            return "input shape " + got + " has batch " + modelShape[0] + "; this app feeds one image of " + img + " at a time";
        }
        if (modelShape.length == 2) {
            long n = (long) set.channels * set.height * set.width;
            return modelShape[1] == n ? null
                    : "input shape " + got + " takes " + modelShape[1] + " values per image; the eval images are " + img
                            + " = " + n + " values";
        }
        if (modelShape.length != 4) {
            return "input shape " + got + " is not 4-d (N,C,H,W or N,H,W,C); the eval images are " + img;
        }
        boolean nhwc = "NHWC".equals(layout);
        int c = nhwc ? modelShape[3] : modelShape[1];
        int h = nhwc ? modelShape[1] : modelShape[2];
        int w = nhwc ? modelShape[2] : modelShape[3];
        if (c != set.channels || h != set.height || w != set.width) {
            return "input shape " + got + " read as " + layout + " is " + c + "x" + h + "x" + w
                    + " (CxHxW); the eval images are " + img;
        }
        return null;
    }

    public Map<String, Object> toJson() {
        Map<String, Object> m = new java.util.LinkedHashMap<String, Object>();
        m.put("layout", layout);
        m.put("shape", shape);
        m.put("mean", mean);
        m.put("std", std);
        m.put("source", source);
        return m;
    }
}
