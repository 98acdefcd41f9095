package dev.vqexport.demo;

import android.content.Context;
import android.os.Build;
import android.os.Handler;
import android.os.Looper;
import android.util.Log;
import dev.vqexport.demo.core.Bench;
import dev.vqexport.demo.core.EvalSet;
import dev.vqexport.demo.core.Json;
import dev.vqexport.demo.core.OrtRunner;
import dev.vqexport.demo.core.ModelRunner;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds the models (assets/models/* and files pushed to getExternalFilesDir(null)), measures each
 * on a worker thread and reports through {@link Listener} on the main thread. It writes the
 * results as JSON to the external files folder and logs them under tag {@value #TAG}.
 * It knows nothing of the screen.
 */
final class BenchRunner {
    static final String TAG = "VQXBENCH";
    static final String ASSET_MODELS = "models";
    static final String ASSET_EVAL = "eval/mnist1000.vqds";
    static final String RESULTS = "results.json";

    /** Callbacks, all on the main thread. */
    interface Listener {
        void onStatus(String line);

        void onResult(Map<String, Object> result);

        void onFinished(File json, List<Map<String, Object>> results);
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

    private final Context ctx;
    private final Bench.Settings settings;
    private final Listener listener;
    private final Handler main = new Handler(Looper.getMainLooper());

    BenchRunner(Context ctx, Bench.Settings settings, Listener listener) {
        this.ctx = ctx.getApplicationContext();
        this.settings = settings;
        this.listener = listener;
    }

    /** Bundled models first, then pushed ones; a pushed file shadows a bundled one of its name. */
    List<ModelRef> listModels() {
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

    /** Runs the named models (all when names is null or empty) on a new worker thread. */
    void start(final List<String> names) {
        Thread t = new Thread(new Runnable() {
            @Override
            public void run() {
                runAll(names);
            }
        }, "vqexport-bench");
        t.start();
    }

    private void post(final Runnable r) {
        main.post(r);
    }

    private void status(final String line) {
        Log.i(TAG, line);
        post(new Runnable() {
            @Override
            public void run() {
                listener.onStatus(line);
            }
        });
    }

    private void runAll(List<String> names) {
        List<ModelRef> all = listModels();
        List<ModelRef> chosen = new ArrayList<ModelRef>();
        final List<Map<String, Object>> results = new ArrayList<Map<String, Object>>();
        if (names == null || names.isEmpty()) {
            chosen.addAll(all);
        } else {
            for (String n : names) {
                ModelRef found = null;
                for (ModelRef m : all) {
                    if (m.name.equals(n)) {
                        found = m;
                    }
                }
                if (found == null) {
                    Map<String, Object> r = new LinkedHashMap<String, Object>();
                    r.put("model", n);
                    r.put("status", "error");
                    r.put("error", "no such model in assets/models or " + ctx.getExternalFilesDir(null));
                    results.add(r);
                    report(r);
                } else {
                    chosen.add(found);
                }
            }
        }
        EvalSet eval = null;
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
        status("running " + chosen.size() + " model(s)");
        Bench bench = new Bench(settings, new AndroidMemoryProbe());
        for (ModelRef m : chosen) {
            status("running " + m.name);
            Map<String, Object> r = runOne(bench, m, eval, evalError);
            results.add(r);
            report(r);
        }
        final File json = write(results, eval);
        status("DONE " + (json == null ? "(JSON not written)" : json.getPath()));
        post(new Runnable() {
            @Override
            public void run() {
                listener.onFinished(json, results);
            }
        });
    }

    private void report(final Map<String, Object> r) {
        Log.i(TAG, "RESULT " + Json.write(r, 0));
        post(new Runnable() {
            @Override
            public void run() {
                listener.onResult(r);
            }
        });
    }

    private Map<String, Object> runOne(Bench bench, ModelRef m, EvalSet eval, String evalError) {
        Map<String, Object> r = new LinkedHashMap<String, Object>();
        r.put("model", m.name);
        r.put("source", m.source);
        final String format = Bench.format(m.name);
        r.put("format", format);
        try {
            final File file = materialise(m);
            r.put("file_bytes", file.length());
            if ("vqm".equals(format)) {
                bench.runVqm(file, r);
            } else if (eval == null) {
                throw new IOException(evalError);
            } else {
                bench.runModel(new Bench.Loader() {
                    @Override
                    public ModelRunner load() throws Exception {
                        return open(format, file);
                    }
                }, eval, r);
            }
            r.put("status", "ok");
            if (r.get("warning") != null) {
                Log.w(TAG, "!!! " + r.get("warning"));
            }
        } catch (Throwable e) { // UnsatisfiedLinkError included: a missing native library is a result too
            r.put("status", "error");
            r.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
            Log.e(TAG, m.name + " failed", e);
        }
        return r;
    }

    private ModelRunner open(String format, File file) throws Exception {
        if ("tflite".equals(format)) {
            return new TfliteRunner(file, settings.threads);
        }
        return new OrtRunner(file.getPath(), settings.threads);
    }

    /** A bundled model is copied to the cache folder once so that every runtime can open a path. */
    private File materialise(ModelRef m) throws IOException {
        if ("external".equals(m.source)) {
            return new File(ctx.getExternalFilesDir(null), m.name);
        }
        File dir = new File(ctx.getCacheDir(), "models");
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        File out = new File(dir, m.name);
        InputStream in = ctx.getAssets().open(ASSET_MODELS + "/" + m.name);
        try {
            OutputStream os = new FileOutputStream(out);
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
        return out;
    }

    /** Build.SUPPORTED_ABIS (API 21; the compile-time stubs are API 16, hence reflection). */
    private static List<String> supportedAbis() {
        try {
            String[] abis = (String[]) Build.class.getField("SUPPORTED_ABIS").get(null);
            return Arrays.asList(abis);
        } catch (ReflectiveOperationException e) {
            return Arrays.asList(Build.CPU_ABI);
        }
    }

    private File write(List<Map<String, Object>> results, EvalSet eval) {
        Map<String, Object> doc = new LinkedHashMap<String, Object>();
        doc.put("schema", "vqexport-android-bench/1");
        doc.put("timestamp_ms", System.currentTimeMillis());
        Map<String, Object> dev = new LinkedHashMap<String, Object>();
        dev.put("manufacturer", Build.MANUFACTURER);
        dev.put("model", Build.MODEL);
        dev.put("sdk_int", Build.VERSION.SDK_INT);
        dev.put("abis", supportedAbis());
        dev.put("cores", Runtime.getRuntime().availableProcessors());
        doc.put("device", dev);
        doc.put("settings", settings.toJson());
        Map<String, Object> ev = new LinkedHashMap<String, Object>();
        ev.put("asset", ASSET_EVAL);
        ev.put("count", eval == null ? 0 : eval.count);
        doc.put("eval_set", ev);
        doc.put("results", results);
        String text = Json.write(doc, 2) + "\n";
        File dir = ctx.getExternalFilesDir(null);
        if (dir == null) {
            Log.e(TAG, "no external files folder; results only in logcat");
            return null;
        }
        File out = new File(dir, RESULTS);
        try {
            byte[] bytes = text.getBytes("UTF-8");
            for (File f : new File[] {new File(dir, "results-" + System.currentTimeMillis() + ".json"), out}) {
                OutputStream os = new FileOutputStream(f);
                try {
                    os.write(bytes);
                } finally {
                    os.close();
                }
            }
        } catch (IOException e) {
            Log.e(TAG, "cannot write " + out, e);
            return null;
        }
        return out;
    }
}
