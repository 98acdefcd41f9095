package dev.vqexport.demo;

import android.app.Activity;
import android.content.Intent;
import android.graphics.Typeface;
import android.os.Build;
import android.os.Bundle;
import android.util.Log;
import android.view.View;
import android.view.WindowInsets;
import android.view.WindowManager;
import android.widget.Button;
import android.widget.HorizontalScrollView;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.TableLayout;
import android.widget.TableRow;
import android.widget.TextView;
import dev.vqexport.demo.core.BenchArgs;
import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The screen: a status line, a "Run all" button and one table row per model. The run itself
 * belongs to {@link BenchSession}, which outlives this activity; this class only shows it.
 *
 * <p>Headless: {@code am start -S -W -n dev.vqexport.demo/.MainActivity --es models a.tflite}
 * (optional: --ei runs N, --ei min_ms T, --ei warmup W, --ei threads K, --ei max_eval E,
 * --ei cooldown_ms C).
 */
public final class MainActivity extends Activity implements BenchSession.Listener {
    private static final String[] COLUMNS = {"model", "size KB", "init ms", "first ms", "p50 ms", "p95 ms",
        "load peak +MB", "top-1", "status"};

    private TextView status;
    private TextView onnxLine;
    private TableLayout table;
    private Button runAll;
    private BenchSession session;

    @Override
    protected void onCreate(Bundle saved) {
        super.onCreate(saved);
        LinearLayout root = new LinearLayout(this);
        root.setOrientation(LinearLayout.VERTICAL);
        final int pad = (int) (12 * getResources().getDisplayMetrics().density);
        root.setPadding(pad, pad, pad, pad);
        // targetSdk 35 draws edge to edge on Android 15: keep the content clear of the system bars.
        root.setOnApplyWindowInsetsListener(new View.OnApplyWindowInsetsListener() {
            @Override
            public WindowInsets onApplyWindowInsets(View v, WindowInsets insets) {
                int l;
                int t;
                int r;
                int b;
                if (Build.VERSION.SDK_INT >= 30) {
                    android.graphics.Insets i = insets.getInsets(WindowInsets.Type.systemBars() | WindowInsets.Type.displayCutout());
                    l = i.left;
                    t = i.top;
                    r = i.right;
                    b = i.bottom;
                } else {
                    l = insets.getSystemWindowInsetLeft();
                    t = insets.getSystemWindowInsetTop();
                    r = insets.getSystemWindowInsetRight();
                    b = insets.getSystemWindowInsetBottom();
                }
                v.setPadding(pad + l, pad + t, pad + r, pad + b);
                return insets;
            }
        });

        status = new TextView(this);
        root.addView(status);
        onnxLine = new TextView(this);
        onnxLine.setText(BenchRunner.onnxAvailable() ? "ONNX: available"
                : "ONNX: unavailable in this build (no ORT_AAR): .onnx models are not run");
        root.addView(onnxLine);
        runAll = new Button(this);
        runAll.setText("Run all");
        runAll.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                BenchArgs args = argsFromIntent();
                args.models = new ArrayList<String>(); // every model
                session.start(args);
            }
        });
        root.addView(runAll);

        table = new TableLayout(this);
        HorizontalScrollView hs = new HorizontalScrollView(this);
        hs.addView(table);
        ScrollView vs = new ScrollView(this);
        vs.addView(hs);
        root.addView(vs);
        setContentView(root);

        session = BenchSession.get(this);
        List<BenchRunner.ModelRef> found = BenchRunner.listModels(this);
        StringBuilder b = new StringBuilder(found.size() + " model(s) found:");
        for (BenchRunner.ModelRef m : found) {
            b.append(' ').append(m.name);
        }
        session.setIdleStatus(b.toString());
        session.attach(this);

        // A fresh launch with --es models starts a run; a recreated activity (saved != null) only
        // re-attaches to the run in progress.
        Intent intent = getIntent();
        if (saved == null && intent != null && intent.hasExtra("models")) {
            if (!session.start(argsFromIntent())) {
                Log.w(BenchRunner.TAG, "a run is already in progress; this launch's extras are ignored");
            }
        }
    }

    /** The intent's extras, checked; an unreadable bundle is an error like any bad extra. */
    private BenchArgs argsFromIntent() {
        Map<String, Object> extras = new LinkedHashMap<String, Object>();
        String unreadable = null;
        Intent i = getIntent();
        try {
            Bundle b = i == null ? null : i.getExtras();
            if (b != null) {
                for (String k : b.keySet()) {
                    extras.put(k, b.get(k));
                }
            }
        } catch (RuntimeException e) { // BadParcelableException and the like
            unreadable = "cannot read the intent extras: " + e;
        }
        BenchArgs args = BenchArgs.parse(extras);
        if (unreadable != null) {
            args.errors.add(unreadable);
        }
        return args;
    }

    @Override
    protected void onDestroy() {
        session.detach(this);
        super.onDestroy();
    }

    @Override
    public void onState(String line, List<Map<String, Object>> rows, boolean running, File json) {
        status.setText(line);
        runAll.setEnabled(!running);
        // The screen stays on while a run is in progress: a locked phone throttles and pauses us.
        if (running) {
            getWindow().addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON);
        } else {
            getWindow().clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON);
        }
        table.removeAllViews();
        table.addView(row(COLUMNS, true));
        for (Map<String, Object> r : rows) {
            table.addView(row(cells(r), false));
        }
    }

    private TableRow row(String[] cells, boolean header) {
        TableRow tr = new TableRow(this);
        int pad = (int) (6 * getResources().getDisplayMetrics().density);
        for (String c : cells) {
            TextView tv = new TextView(this);
            tv.setText(c);
            tv.setPadding(pad, pad / 2, pad, pad / 2);
            if (header) {
                tv.setTypeface(Typeface.DEFAULT_BOLD);
            }
            tr.addView(tv);
        }
        return tr;
    }

    /** One table row from one result; "-" where a value does not apply. */
    static String[] cells(Map<String, Object> r) {
        String top1 = "-";
        Object acc = r.get("accuracy");
        if (acc instanceof Map) {
            Object v = ((Map<?, ?>) acc).get("top1");
            top1 = v instanceof Number ? String.format(Locale.ROOT, "%.1f%%", 100 * ((Number) v).doubleValue()) : "-";
        }
        String peak = "-";
        Object p = get(r, "memory", "peak_load", "vm_rss_kb");
        Object b = get(r, "memory", "before", "vm_rss_kb");
        if (p instanceof Number && b instanceof Number) {
            peak = num((((Number) p).doubleValue() - ((Number) b).doubleValue()) / 1024, 1);
        }
        Object size = r.get("file_bytes");
        String st = String.valueOf(r.get("status"));
        if ("error".equals(st)) {
            st = "error: " + r.get("error");
        } else if (r.get("decode_ms") != null) {
            st = "decoded in " + num(r.get("decode_ms"), 1) + " ms";
        }
        return new String[] {String.valueOf(r.get("model")),
            size instanceof Number ? num(((Number) size).doubleValue() / 1024, 1) : "-",
            num(r.get("init_ms"), 1), num(r.get("first_run_ms"), 2),
            num(get(r, "latency_ms", "p50"), 3), num(get(r, "latency_ms", "p95"), 3), peak, top1, st};
    }

    private static Object get(Map<String, Object> r, String... keys) {
        Object v = r;
        for (String k : keys) {
            if (!(v instanceof Map)) {
                return null;
            }
            v = ((Map<?, ?>) v).get(k);
        }
        return v;
    }

    private static String num(Object v, int decimals) {
        if (!(v instanceof Number)) {
            return "-";
        }
        return String.format(Locale.ROOT, "%." + decimals + "f", ((Number) v).doubleValue());
    }
}
