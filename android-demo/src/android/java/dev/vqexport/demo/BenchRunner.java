package dev.vqexport.demo;

import android.content.Context;
import android.content.pm.PackageInfo;
import android.os.Build;
import android.system.Os;
import android.system.OsConstants;
import android.util.Log;
import dev.vqexport.demo.core.Bench;
import dev.vqexport.demo.core.BenchArgs;
import dev.vqexport.demo.core.EvalSet;
import dev.vqexport.demo.core.Json;
import dev.vqexport.demo.core.ModelRunner;
import dev.vqexport.demo.core.ResultsFile;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One benchmark run, on the caller's (worker) thread: finds the models (assets/models/* and files
 * pushed to getExternalFilesDir(null)), measures each, writes results.json atomically and logs
 * every row and a final "DONE <path>" line under tag {@value #TAG}, whatever happens. It knows
 * nothing of the screen: it reports to a {@link Sink}.
 */
final class BenchRunner {
    static final String TAG = "VQXBENCH";
    static final String SCHEMA = "vqexport-android-bench/2";
    static final String ASSET_MODELS = "models";
    static final String ASSET_EVAL = "eval/mnist1000.vqds";
    static final String RESULTS = "results.json";
    static final String ORT_RUNNER = "dev.vqexport.demo.core.OrtRunner";
    static final String ONNX_UNAVAILABLE = "ONNX Runtime is not in this APK (build it with make apk ORT_AAR=path/to/onnxruntime-android.aar)";

    /** Where the run reports; called on the worker thread. */
    interface Sink {
        void status(String line);

        void result(Map<String, Object> row);

        void finished(File json, List<Map<String, Object>> rows);
    }

    /** A model the app can run: its name and where it comes from. */
    static final class ModelRef {
        final String name;
        final String source; // "asset" or "external"

        ModelRef(String name, String source) {
            this.name = name;
            this.source = source;
        }
    }

    /** How many models this process has measured: 0 for the first (the only clean one for memory). */
    private static int modelsInProcess;

    private final Context ctx;
    private final Sink sink;

    BenchRunner(Context ctx, Sink sink) {
        this.ctx = ctx.getApplicationContext();
        this.sink = sink;
    }

    static boolean onnxAvailable() {
        try {
            Class.forName(ORT_RUNNER);
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        } catch (LinkageError e) {
            return false;
        }
    }

    /** Bundled models first, then pushed ones; a pushed file shadows a bundled one of its name. */
    static List<ModelRef> listModels(Context ctx) {
        Map<String, ModelRef> byName = new LinkedHashMap<String, ModelRef>();
        try {
            String[] assets = ctx.getAssets().list(ASSET_MODELS);
            if (assets != null) {
                Arrays.sort(assets);
                for (String a : assets) {
                    if (Bench.format(a) != null) {
                        byName.put(a, new ModelRef(a, "asset"));
                    }
                }
            }
        } catch (IOException e) {
            Log.w(TAG, "cannot list assets/" + ASSET_MODELS + ": " + e);
        }
        File ext = ctx.getExternalFilesDir(null);
        File[] files = ext == null ? null : ext.listFiles();
        if (files != null) {
            Arrays.sort(files);
            for (File f : files) {
                if (f.isFile() && Bench.format(f.getName()) != null) {
                    byName.put(f.getName(), new ModelRef(f.getName(), "external"));
                }
            }
        }
        return new ArrayList<ModelRef>(byName.values());
    }

    /** Runs what {@code args} asks; always ends with results.json written and the DONE line. */
    void run(BenchArgs args) {
        List<Map<String, Object>> rows = new ArrayList<Map<String, Object>>();
        List<String> skipped = new ArrayList<String>();
        EvalSet eval = null;
        File json = null;
        try {
            String argError = args.errorLine();
            if (!args.ignored.isEmpty()) {
                Log.w(TAG, "ignoring unknown extras " + args.ignored + " (known: " + BenchArgs.KNOWN + ")");
            }
            List<ModelRef> chosen = choose(args, rows, skipped);
            if (argError != null) {
                Log.e(TAG, argError);
                // Nothing is measured with settings the user did not mean: one error row per model asked for.
                List<String> names = new ArrayList<String>();
                for (ModelRef m : chosen) {
                    names.add(m.name);
                }
                if (names.isEmpty() && rows.isEmpty()) {
                    names.add("*");
                }
                for (String n : names) {
                    rows.add(report(errorRow(n, argError)));
                }
                return;
            }
            if (!onnxAvailable()) {
                sink.status("ONNX: unavailable in this build (no ORT_AAR)"
                        + (skipped.isEmpty() ? "" : "; not run: " + join(skipped)));
            }
            String evalError = null;
            try {
                InputStream in = ctx.getAssets().open(ASSET_EVAL);
                try {
                    eval = EvalSet.read(in, "assets/" + ASSET_EVAL);
                } finally {
                    in.close();
                }
            } catch (IOException e) {
                evalError = "eval set missing or bad: " + e.getMessage();
                Log.e(TAG, "!!! " + evalError + " - accuracy and latency of inference models cannot be measured");
            }
            Bench bench = new Bench(args.settings, new AndroidMemoryProbe());
            for (int i = 0; i < chosen.size(); i++) {
                if (i > 0 && args.cooldownMillis > 0) {
                    sink.status("cooling down " + args.cooldownMillis + " ms");
                    Thread.sleep(args.cooldownMillis);
                }
                ModelRef m = chosen.get(i);
                sink.status("running " + m.name + " (" + (i + 1) + "/" + chosen.size() + ")");
                rows.add(report(runOne(bench, args, m, eval, evalError)));
            }
        } catch (Throwable t) { // anything unforeseen is still a row, and the run still ends properly
            Log.e(TAG, "run failed", t);
            rows.add(report(errorRow("*", "run failed: " + t)));
        } finally {
            json = write(rows, args, eval, skipped);
            String done = "DONE " + (json == null ? "(results.json not written)" : json.getPath());
            Log.i(TAG, done);
            sink.status(done);
            sink.finished(json, rows);
        }
    }

    /** The models to run: the named ones (an error row for each that is missing), or all. */
    private List<ModelRef> choose(BenchArgs args, List<Map<String, Object>> rows, List<String> skipped) {
        List<ModelRef> all = listModels(ctx);
        List<ModelRef> chosen = new ArrayList<ModelRef>();
        boolean onnx = onnxAvailable();
        if (args.models == null || args.models.isEmpty()) {
            for (ModelRef m : all) {
                if (!onnx && "onnx".equals(Bench.format(m.name))) {
                    skipped.add(m.name);
                } else {
                    chosen.add(m);
                }
            }
            return chosen;
        }
        for (String n : args.models) {
            ModelRef found = null;
            for (ModelRef m : all) {
                if (m.name.equals(n)) {
                    found = m;
                }
            }
            if (found == null) {
                rows.add(report(errorRow(n, "no such model in assets/models or " + ctx.getExternalFilesDir(null))));
            } else {
                chosen.add(found);
            }
        }
        return chosen;
    }

    private static Map<String, Object> errorRow(String model, String error) {
        Map<String, Object> r = new LinkedHashMap<String, Object>();
        r.put("model", model);
        r.put("status", "error");
        r.put("error", error);
        return r;
    }

    private Map<String, Object> report(Map<String, Object> r) {
        Log.i(TAG, "RESULT " + Json.write(r, 0));
        sink.result(r);
        return r;
    }

    private Map<String, Object> runOne(Bench bench, BenchArgs args, ModelRef m, EvalSet eval, String evalError) {
        Map<String, Object> r = new LinkedHashMap<String, Object>();
        r.put("model", m.name);
        r.put("source", m.source);
        final String format = Bench.format(m.name);
        r.put("format", format);
        r.put("pid", android.os.Process.myPid());
        r.put("process_model_index", modelsInProcess++);
        Map<String, Object> state = new LinkedHashMap<String, Object>();
        state.put("before", deviceState());
        r.put("device_state", state);
        try {
            final File file = materialise(m);
            r.put("file_bytes", file.length());
            if ("vqm".equals(format)) {
                bench.runVqm(file, r);
            } else if ("onnx".equals(format) && !onnxAvailable()) {
                throw new UnsupportedOperationException(ONNX_UNAVAILABLE);
            } else if (eval == null) {
                throw new IOException(evalError);
            } else {
                final int threads = args.settings.threads;
                bench.runModel(new Bench.Loader() {
                    @Override
                    public ModelRunner load() throws Exception {
                        return open(format, file, threads);
                    }
                }, eval, r);
            }
            r.put("status", "ok");
            if (r.get("warning") != null) {
                Log.w(TAG, "!!! " + r.get("warning"));
            }
        } catch (Throwable e) { // OutOfMemoryError and UnsatisfiedLinkError included: a failed model is a row
            r.put("status", "error");
            r.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
            Log.e(TAG, m.name + " failed", e);
        }
        state.put("after", deviceState());
        return r;
    }

    private Map<String, Object> deviceState() {
        try {
            return DeviceState.read(ctx);
        } catch (RuntimeException e) {
            Map<String, Object> m = new LinkedHashMap<String, Object>();
            m.put("error", e.toString());
            return m;
        }
    }

    private static ModelRunner open(String format, File file, int threads) throws Exception {
        if ("tflite".equals(format)) {
            return new TfliteRunner(file, threads);
        }
        try {
            return (ModelRunner) Class.forName(ORT_RUNNER).getConstructor(String.class, int.class)
                    .newInstance(file.getPath(), threads);
        } catch (InvocationTargetException e) {
            Throwable c = e.getCause();
            if (c instanceof Exception) {
                throw (Exception) c;
            }
            throw (Error) c;
        }
    }

    /**
     * A bundled model is copied to the cache folder so that every runtime can open a path; once
     * per installed APK: a copy newer than the APK's install with the asset's size is reused.
     */
    private File materialise(ModelRef m) throws IOException {
        if ("external".equals(m.source)) {
            return new File(ctx.getExternalFilesDir(null), m.name);
        }
        File dir = new File(ctx.getCacheDir(), "models");
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        File out = new File(dir, m.name);
        long size = assetSize(ASSET_MODELS + "/" + m.name);
        if (out.isFile() && out.length() == size && out.lastModified() >= installTime()) {
            return out;
        }
        File tmp = new File(dir, "." + m.name + ".tmp");
        InputStream in = ctx.getAssets().open(ASSET_MODELS + "/" + m.name);
        try {
            OutputStream os = new FileOutputStream(tmp);
            try {
                byte[] buf = new byte[1 << 16];
                int n;
                while ((n = in.read(buf)) > 0) {
                    os.write(buf, 0, n);
                }
            } finally {
                os.close();
            }
        } finally {
            in.close();
        }
        if (!tmp.renameTo(out)) {
            throw new IOException("cannot rename " + tmp + " to " + out);
        }
        return out;
    }

    /** The asset's length (assets are stored uncompressed, aapt2 -0), or -1 when unknown. */
    private long assetSize(String path) {
        try {
            android.content.res.AssetFileDescriptor fd = ctx.getAssets().openFd(path);
            try {
                return fd.getLength();
            } finally {
                fd.close();
            }
        } catch (IOException e) {
            return -1;
        }
    }

    private long installTime() {
        try {
            return ctx.getPackageManager().getPackageInfo(ctx.getPackageName(), 0).lastUpdateTime;
        } catch (Exception e) {
            return Long.MAX_VALUE; // unknown: copy again
        }
    }

    private static String join(List<String> names) {
        StringBuilder b = new StringBuilder();
        for (String n : names) {
            b.append(b.length() == 0 ? "" : ", ").append(n);
        }
        return b.toString();
    }

    private File write(List<Map<String, Object>> rows, BenchArgs args, EvalSet eval, List<String> skipped) {
        try {
            Map<String, Object> doc = new LinkedHashMap<String, Object>();
            doc.put("schema", SCHEMA);
            doc.put("timestamp_ms", System.currentTimeMillis());
            Map<String, Object> app = new LinkedHashMap<String, Object>();
            try {
                PackageInfo pi = ctx.getPackageManager().getPackageInfo(ctx.getPackageName(), 0);
                app.put("version_name", pi.versionName);
                app.put("version_code", pi.versionCode);
            } catch (Exception e) {
                app.put("version_name", null);
            }
            doc.put("app", app);
            Map<String, Object> dev = new LinkedHashMap<String, Object>();
            dev.put("manufacturer", Build.MANUFACTURER);
            dev.put("model", Build.MODEL);
            dev.put("sdk_int", Build.VERSION.SDK_INT);
            dev.put("abis", Arrays.asList(Build.SUPPORTED_ABIS));
            dev.put("cores", Runtime.getRuntime().availableProcessors());
            dev.put("page_size", Os.sysconf(OsConstants._SC_PAGESIZE));
            doc.put("device", dev);
            doc.put("settings", args.settings.toJson());
            Map<String, Object> a = new LinkedHashMap<String, Object>();
            a.put("models", args.models);
            a.put("cooldown_ms", args.cooldownMillis);
            a.put("errors", args.errors);
            a.put("ignored_extras", args.ignored);
            doc.put("args", a);
            Map<String, Object> onnx = new LinkedHashMap<String, Object>();
            onnx.put("available", onnxAvailable());
            onnx.put("not_run", skipped);
            doc.put("onnx", onnx);
            Map<String, Object> ev = new LinkedHashMap<String, Object>();
            ev.put("asset", ASSET_EVAL);
            ev.put("count", eval == null ? 0 : eval.count);
            doc.put("eval_set", ev);
            doc.put("results", rows);
            File dir = ctx.getExternalFilesDir(null);
            if (dir == null) {
                Log.e(TAG, "no external files folder; results only in logcat");
                return null;
            }
            File out = new File(dir, RESULTS);
            ResultsFile.writeAtomic(out, Json.write(doc, 2) + "\n");
            return out;
        } catch (Throwable e) { // IOException, or no memory left for the text: the DONE line still follows
            Log.e(TAG, "cannot write " + RESULTS, e);
            return null;
        }
    }
}
