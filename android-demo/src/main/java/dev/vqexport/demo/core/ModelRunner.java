package dev.vqexport.demo.core;

import java.io.Closeable;
import java.util.Map;

/**
 * One loaded model that maps one input image to one row of logits. Input and output copies are
 * separate calls so that the timed part, {@link #invoke}, is the runtime's work alone, as in
 * benchmark_model.
 */
public interface ModelRunner extends Closeable {
    /** "tflite" or "onnxruntime", with its version where known. */
    String backend();

    /** The model's input shape as the runtime reports it (batch first; -1 where dynamic). */
    int[] inputShape();

    /** How to feed it (from its metadata, or the defaults with a warning). */
    InputSpec inputSpec();

    /** Copies one image (already normalised, in the model's layout) into the runtime's input. */
    void setInput(float[] input) throws Exception;

    /** Runs the model once on the current input. */
    void invoke() throws Exception;

    /** The logits of the last {@link #invoke}, as a new array. */
    float[] output() throws Exception;

    /** The runtime's own duration of the last invoke in nanoseconds, or -1 when it reports none. */
    long lastNativeNanos();

    /** The runtime's settings as applied: "threads", and for TFLite "xnnpack" (see README). */
    Map<String, Object> runtimeInfo();
}
