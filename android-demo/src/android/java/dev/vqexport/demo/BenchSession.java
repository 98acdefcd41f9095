package dev.vqexport.demo;

import android.content.Context;
import android.os.Handler;
import android.os.Looper;
import dev.vqexport.demo.core.BenchArgs;
import java.io.File;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * The process's one benchmark run, which outlives any activity: a night-mode, locale, font or
 * window change recreates MainActivity, and the new one re-attaches here and shows the rows so far
 * instead of starting a second run beside the first. Only one run at a time.
 */
final class BenchSession implements BenchRunner.Sink {
    /** What the screen shows; all calls on the main thread. */
    interface Listener {
        void onState(String status, List<Map<String, Object>> rows, boolean running, File json);
    }

    private static BenchSession instance;

    private final Context app;
    private final Handler main = new Handler(Looper.getMainLooper());
    private final List<Map<String, Object>> rows = new ArrayList<Map<String, Object>>();
    private String status = "";
    private boolean running;
    private boolean started;
    private File json;
    private Listener listener;

    private BenchSession(Context app) {
        this.app = app;
    }

    static synchronized BenchSession get(Context ctx) {
        if (instance == null) {
            instance = new BenchSession(ctx.getApplicationContext());
        }
        return instance;
    }

    /** Starts a run on a new worker thread; false when one is already running. */
    synchronized boolean start(final BenchArgs args) {
        if (running) {
            return false;
        }
        running = true;
        started = true;
        rows.clear();
        json = null;
        status = "starting";
        Thread t = new Thread(new Runnable() {
            @Override
            public void run() {
                new BenchRunner(app, BenchSession.this).run(args);
            }
        }, "vqexport-bench");
        t.start();
        notifyListener();
        return true;
    }

    synchronized boolean isRunning() {
        return running;
    }

    /** True once any run has started in this process (a headless launch is not repeated). */
    synchronized boolean hasStarted() {
        return started;
    }

    /** Shows the current state at once, then every change, until {@link #detach}. */
    synchronized void attach(Listener l) {
        listener = l;
        notifyListener();
    }

    synchronized void detach(Listener l) {
        if (listener == l) {
            listener = null;
        }
    }

    synchronized void setIdleStatus(String line) {
        if (!running && !started) {
            status = line;
            notifyListener();
        }
    }

    @Override
    public synchronized void status(String line) {
        status = line;
        notifyListener();
    }

    @Override
    public synchronized void result(Map<String, Object> row) {
        rows.add(row);
        notifyListener();
    }

    @Override
    public synchronized void finished(File out, List<Map<String, Object>> all) {
        running = false;
        json = out;
        status = all.size() + " model(s) done; JSON: " + (out == null ? "not written" : out.getPath());
        notifyListener();
    }

    /** Posts a copy of the state to the main thread; the listener is read there, when it runs. */
    private void notifyListener() {
        final String s = status;
        final List<Map<String, Object>> copy = Collections.unmodifiableList(new ArrayList<Map<String, Object>>(rows));
        final boolean r = running;
        final File j = json;
        main.post(new Runnable() {
            @Override
            public void run() {
                Listener l;
                synchronized (BenchSession.this) {
                    l = listener;
                }
                if (l != null) {
                    l.onState(s, copy, r, j);
                }
            }
        });
    }
}
