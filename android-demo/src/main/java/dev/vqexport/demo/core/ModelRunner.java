package dev.vqexport.demo.core;

import java.io.Closeable;

/** One loaded model that maps one input image to one row of logits. */
public interface ModelRunner extends Closeable {
    /** "tflite" or "onnxruntime", with its version where known. */
    String backend();

    /** The model's input shape as the runtime reports it (batch first). */
    int[] inputShape();

    /** How to feed it (from its metadata, or the defaults with a warning). */
    InputSpec inputSpec();

    /** Runs one image (already normalised, in the model's layout) and returns its logits. */
    float[] run(float[] input) throws Exception;
}
