package dev.vqexport.demo.core;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import java.nio.FloatBuffer;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A .onnx model on ONNX Runtime's CPU provider (desktop jar on the JVM, the onnxruntime-android
 * AAR's classes in the app). The APK holds this class only when it was built with ORT_AAR; the app
 * looks it up by name and lists ONNX as unavailable when it is absent.
 */
public final class OrtRunner implements ModelRunner {
    /** The first failure to start ONNX Runtime in this process, reported again for every later model. */
    private static Throwable startFailure;

    private final OrtEnvironment env;
    private final OrtSession session;
    private final String inputName;
    private final long[] shape;
    private final int[] reportedShape;
    private final InputSpec spec;
    private final int threads;
    private final FloatBuffer input;
    private OnnxTensor inputTensor;
    private OrtSession.Result last;

    public OrtRunner(String path, int threads) throws OrtException {
        env = environment();
        this.threads = threads;
        OrtSession.SessionOptions opts = new OrtSession.SessionOptions();
        try {
            opts.setIntraOpNumThreads(threads);
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
        reportedShape = new int[s.length];
        shape = s.clone();
        long elements = 1;
        for (int i = 0; i < shape.length; i++) {
            reportedShape[i] = (int) Math.max(-1, Math.min(Integer.MAX_VALUE, s[i]));
            if (i == 0 && shape[i] < 0) {
                shape[i] = 1; // a symbolic batch dimension: run one image at a time
            }
            elements *= Math.max(1, shape[i]);
        }
        Map<String, String> props = session.getMetadata().getCustomMetadata();
        InputSpec fromMeta = InputSpec.fromOnnxProps(props == null ? Collections.<String, String>emptyMap() : props);
        spec = fromMeta != null ? fromMeta : InputSpec.defaults("onnx", path);
        input = FloatBuffer.allocate((int) Math.min(elements, 1 << 26));
    }

    /**
     * OrtEnvironment's class initialiser loads the native library; when that fails, every later use
     * says only "Could not initialize class". Keep the first failure and repeat it instead.
     */
    private static synchronized OrtEnvironment environment() {
        if (startFailure != null) {
            throw new IllegalStateException("ONNX Runtime could not start in this process: " + startFailure, startFailure);
        }
        try {
            return OrtEnvironment.getEnvironment();
        } catch (LinkageError e) {
            startFailure = e;
            throw new IllegalStateException("ONNX Runtime could not start: " + e, e);
        }
    }

    @Override
    public String backend() {
        return "onnxruntime " + env.getVersion();
    }

    @Override
    public int[] inputShape() {
        return reportedShape.clone();
    }

    @Override
    public InputSpec inputSpec() {
        return spec;
    }

    @Override
    public void setInput(float[] x) throws OrtException {
        if (inputTensor != null) {
            inputTensor.close();
            inputTensor = null;
        }
        input.clear();
        input.put(x);
        input.flip();
        inputTensor = OnnxTensor.createTensor(env, input, shape);
    }

    @Override
    public void invoke() throws OrtException {
        if (last != null) {
            last.close();
        }
        last = session.run(Collections.singletonMap(inputName, inputTensor));
    }

    @Override
    public float[] output() throws OrtException {
        FloatBuffer fb = ((OnnxTensor) last.get(0)).getFloatBuffer();
        float[] logits = new float[fb.remaining()];
        fb.get(logits);
        return logits;
    }

    @Override
    public long lastNativeNanos() {
        return -1; // ORT's Java API reports no per-run time; its profiler writes a file instead
    }

    @Override
    public Map<String, Object> runtimeInfo() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("threads", threads);
        m.put("execution_provider", "CPU");
        return m;
    }

    @Override
    public void close() {
        if (last != null) {
            last.close();
            last = null;
        }
        if (inputTensor != null) {
            inputTensor.close();
            inputTensor = null;
        }
        try {
            session.close();
        } catch (OrtException e) {
            // closing twice or after a failed load: nothing to free
        }
    }
}
