package dev.vqexport.demo;

import android.util.Log;
import dev.vqexport.demo.core.InputSpec;
import dev.vqexport.demo.core.ModelRunner;
import dev.vqexport.demo.core.TfliteExternal;
import dev.vqexport.demo.core.TfliteLog;
import dev.vqexport.demo.core.TfliteMetadata;
import dev.vqexport.demo.core.VqmLimits;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.LinkedHashMap;
import java.util.Map;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;

/** A .tflite model on the TFLite interpreter (CPU, XNNPACK on, float32 input and output). */
final class TfliteRunner implements ModelRunner {
    private final Interpreter interpreter;
    private final int[] shape;
    private final InputSpec spec;
    private final ByteBuffer in;
    private final ByteBuffer out;
    private final int threads;
    private final String marker;
    private Map<String, Object> info;

    TfliteRunner(File file, int threads) throws IOException {
        this.threads = threads;
        MappedByteBuffer mapped = map(file);
        InputSpec fromMeta = InputSpec.fromTflite(mapped);
        // A decode="load" file: its weights are decoded here, into the buffer the interpreter gets,
        // so XNNPACK sees constants. Any other file is memory-mapped as it is. The decoded weights go
        // into a mapped temporary file beside the model (the app's cache), not the Java heap.
        ByteBuffer expanded = TfliteExternal.expand(mapped, file.getName(), VqmLimits.DEFAULT, file.getParentFile());
        ByteBuffer model = expanded != null ? expanded : mapped;
        spec = fromMeta != null ? fromMeta : InputSpec.defaults("tflite", file.getName());
        Interpreter.Options opts = new Interpreter.Options();
        opts.setNumThreads(threads);
        opts.setUseXNNPACK(true);
        // What TFLite logs while building this interpreter says whether XNNPACK took the graph.
        marker = "interpreter for " + file.getName() + " @" + System.nanoTime();
        Log.i(BenchRunner.TAG, "building " + marker);
        interpreter = new Interpreter(model, opts);
        Tensor input = interpreter.getInputTensor(0);
        Tensor output = interpreter.getOutputTensor(0);
        if (input.dataType() != DataType.FLOAT32 || output.dataType() != DataType.FLOAT32) {
            interpreter.close();
            throw new IllegalArgumentException(file.getName() + ": input/output are " + input.dataType() + "/"
                    + output.dataType() + "; this demo feeds float32 only");
        }
        shape = input.shape();
        in = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder());
        out = ByteBuffer.allocateDirect(output.numBytes()).order(ByteOrder.nativeOrder());
    }

    private static MappedByteBuffer map(File file) throws IOException {
        FileInputStream s = new FileInputStream(file);
        try {
            FileChannel ch = s.getChannel();
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size());
        } finally {
            s.close();
        }
    }

    @Override
    public String backend() {
        return "tflite " + org.tensorflow.lite.TensorFlowLite.runtimeVersion();
    }

    @Override
    public int[] inputShape() {
        return shape.clone();
    }

    @Override
    public InputSpec inputSpec() {
        return spec;
    }

    @Override
    public void setInput(float[] x) {
        in.rewind();
        in.asFloatBuffer().put(x);
    }

    @Override
    public void invoke() {
        in.rewind();
        out.rewind();
        interpreter.run(in, out);
    }

    @Override
    public float[] output() {
        out.rewind();
        float[] logits = new float[out.capacity() / 4];
        out.asFloatBuffer().get(logits);
        return logits;
    }

    @Override
    public long lastNativeNanos() {
        Long n = interpreter.getLastNativeInferenceDurationNanoseconds();
        return n == null ? -1 : n;
    }

    @Override
    public Map<String, Object> runtimeInfo() {
        if (info == null) {
            info = new LinkedHashMap<String, Object>();
            info.put("threads", threads);
            info.put("xnnpack_requested", true);
            String log = OwnLog.since(marker);
            Map<String, Object> x = TfliteLog.xnnpack(log);
            if (log == null) {
                x.put("note", "logcat unreadable: cannot tell");
            }
            info.put("xnnpack", x);
        }
        return info;
    }

    @Override
    public void close() {
        interpreter.close();
    }
}
