package dev.vqexport.demo.core;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.nio.FloatBuffer;
import java.util.Collections;
import java.util.Map;

/** A .onnx model on ONNX Runtime's CPU provider (desktop jar on the JVM, the same API on Android). */
public final class OrtRunner implements ModelRunner {
    private final OrtEnvironment env;
    private final OrtSession session;
    private final String inputName;
    private final long[] shape;
    private final InputSpec spec;

    public OrtRunner(String path, int threads) throws OrtException {
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions opts = new OrtSession.SessionOptions();
        try {
            if (threads > 0) {
                opts.setIntraOpNumThreads(threads);
            }
            opts.setInterOpNumThreads(1);
            session = env.createSession(path, opts);
        } finally {
            opts.close();
        }
        inputName = session.getInputNames().iterator().next();
        NodeInfo info = session.getInputInfo().get(inputName);
        if (!(info.getInfo() instanceof TensorInfo)) {
            session.close();
            throw new IllegalArgumentException(path + ": the first input is not a tensor");
        }
        long[] s = ((TensorInfo) info.getInfo()).getShape();
        shape = s.clone();
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                shape[i] = 1; // a symbolic batch dimension: run one image at a time
            }
        }
        Map<String, String> props = session.getMetadata().getCustomMetadata();
        InputSpec fromMeta = InputSpec.fromOnnxProps(props == null ? Collections.<String, String>emptyMap() : props);
        spec = fromMeta != null ? fromMeta : InputSpec.defaults("onnx", path);
    }

    @Override
    public String backend() {
        return "onnxruntime";
    }

    @Override
    public int[] inputShape() {
        int[] out = new int[shape.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) shape[i];
        }
        return out;
    }

    @Override
    public InputSpec inputSpec() {
        return spec;
    }

    @Override
    public float[] run(float[] input) throws OrtException {
        OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(input), shape);
        try {
            OrtSession.Result r = session.run(Collections.singletonMap(inputName, t));
            try {
                OnnxTensor out = (OnnxTensor) r.get(0);
                FloatBuffer fb = out.getFloatBuffer();
                float[] logits = new float[fb.remaining()];
                fb.get(logits);
                return logits;
            } finally {
                r.close();
            }
        } finally {
            t.close();
        }
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            // closing twice or after a failed load: nothing to free
        }
    }
}
