package dev.vqexport.demo;

import android.app.Activity;
import android.content.Intent;
import android.graphics.Typeface;
import android.os.Bundle;
import android.view.View;
import android.widget.Button;
import android.widget.HorizontalScrollView;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.TableLayout;
import android.widget.TableRow;
import android.widget.TextView;
import dev.vqexport.demo.core.Bench;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The screen: a status line, a "Run all" button and one table row per model. All measuring is
 * BenchRunner's; this class only shows what it reports.
 *
 * <p>Headless: {@code am start -n dev.vqexport.demo/.MainActivity --es models a.tflite,b.onnx}
 * (optional: --ei runs N, --ei min_ms T, --ei warmup W, --ei threads K, --ei max_eval E).
 */
public final class MainActivity extends Activity implements BenchRunner.Listener {
    private static final String[] COLUMNS = {"model", "size KB", "init ms", "p50 ms", "p95 ms", "top-1", "PSS +KB", "status"};

    private TextView status;
    private TableLayout table;
    private Button runAll;
    private boolean running;

    @Override
    protected void onCreate(Bundle saved) {
        super.onCreate(saved);
        LinearLayout root = new LinearLayout(this);
        root.setOrientation(LinearLayout.VERTICAL);
        int pad = (int) (12 * getResources().getDisplayMetrics().density);
        root.setPadding(pad, pad, pad, pad);

        status = new TextView(this);
        root.addView(status);
        runAll = new Button(this);
        runAll.setText("Run all");
        runAll.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                start(null);
            }
        });
        root.addView(runAll);

        table = new TableLayout(this);
        table.setStretchAllColumns(false);
        HorizontalScrollView hs = new HorizontalScrollView(this);
        hs.addView(table);
        ScrollView vs = new ScrollView(this);
        vs.addView(hs);
        root.addView(vs);
        setContentView(root);
        resetTable();

        Intent intent = getIntent();
        String models = intent == null ? null : intent.getStringExtra("models");
        List<BenchRunner.ModelRef> found = runner().listModels();
        StringBuilder b = new StringBuilder(found.size() + " model(s) found:");
        for (BenchRunner.ModelRef m : found) {
            b.append(' ').append(m.name);
        }
        status.setText(b.toString());
        if (models != null && saved == null) {
            List<String> names = new ArrayList<String>();
            if (!"all".equals(models.trim())) {
                for (String n : models.split(",")) {
                    if (!n.trim().isEmpty()) {
                        names.add(n.trim());
                    }
                }
            }
            start(names);
        }
    }

    private BenchRunner runner() {
        Bench.Settings s = new Bench.Settings();
        Intent i = getIntent();
        if (i != null) {
            s.minRuns = i.getIntExtra("runs", s.minRuns);
            s.minMillis = i.getIntExtra("min_ms", (int) s.minMillis);
            s.warmup = i.getIntExtra("warmup", s.warmup);
            s.threads = i.getIntExtra("threads", s.threads);
            s.maxEval = i.getIntExtra("max_eval", s.maxEval);
        }
        return new BenchRunner(this, s, this);
    }

    private void start(List<String> names) {
        if (running) {
            return;
        }
        running = true;
        runAll.setEnabled(false);
        resetTable();
        runner().start(names);
    }

    private void resetTable() {
        table.removeAllViews();
        table.addView(row(COLUMNS, true));
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

    @Override
    public void onStatus(String line) {
        status.setText(line);
    }

    @Override
    public void onResult(Map<String, Object> r) {
        table.addView(row(cells(r), false));
    }

    @Override
    public void onFinished(File json, List<Map<String, Object>> results) {
        running = false;
        runAll.setEnabled(true);
        status.setText(results.size() + " model(s) done; JSON: " + (json == null ? "not written" : json.getPath()));
    }

    /** One table row from one result; "-" where a value does not apply. */
    static String[] cells(Map<String, Object> r) {
        String p50 = "-";
        String p95 = "-";
        Object lat = r.get("latency_ms");
        if (lat instanceof Map) {
            p50 = num(((Map<?, ?>) lat).get("p50"), 2);
            p95 = num(((Map<?, ?>) lat).get("p95"), 2);
        }
        String top1 = "-";
        Object acc = r.get("accuracy");
        if (acc instanceof Map) {
            Object v = ((Map<?, ?>) acc).get("top1");
            top1 = v instanceof Number ? String.format(Locale.ROOT, "%.1f%%", 100 * ((Number) v).doubleValue()) : "-";
        }
        String pss = "-";
        Object mem = r.get("memory");
        if (mem instanceof Map && ((Map<?, ?>) mem).get("delta") instanceof Map) {
            pss = num(((Map<?, ?>) ((Map<?, ?>) mem).get("delta")).get("pss_total_kb"), 0);
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
                num(r.get("init_ms"), 1), p50, p95, top1, pss, st};
    }

    private static String num(Object v, int decimals) {
        if (!(v instanceof Number)) {
            return "-";
        }
        return String.format(Locale.ROOT, "%." + decimals + "f", ((Number) v).doubleValue());
    }

}
