"""Benchmark models on an Android phone with the vqexport demo app, over adb.

It installs the APK, pushes the models to the app's external files folder, then measures each
model in a fresh app process, as TFLite's benchmark_model does: for every model it starts the app
with `am start -S -W ... --es models ONE` (-S stops the previous process first), waits for the
app's DONE line, pulls its results.json and merges the rows into OUT/results.json. A model that
crashes the app or times out becomes an error row; the next model still runs. It then writes a
markdown table and a PNG (model size against latency, coloured by top-1 accuracy).

Example:
    make apk
    .venv/bin/python tools/android_bench.py out/mnist_kmeans.tflite out/mnist_kmeans.vqm \\
        --out out/android-bench --cooldown 30

    # no model files: every model bundled in the APK, one process each
    .venv/bin/python tools/android_bench.py

    # only the report, from a results.json pulled before (no phone needed):
    .venv/bin/python tools/android_bench.py --from-json out/android-bench/results.json

Without adb or without a phone in the "device" state it prints one line saying so and exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

PACKAGE = "dev.vqexport.demo"
ACTIVITY = f"{PACKAGE}/.MainActivity"
REMOTE_DIR = f"/sdcard/Android/data/{PACKAGE}/files"
TAG = "VQXBENCH"
SCHEMA = "vqexport-android-bench/2"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APK = ROOT / "android-demo" / "build" / "vqexport-demo.apk"
SUFFIXES = (".tflite", ".onnx", ".vqm")


class NoPhone(Exception):
    """No adb, or no phone attached: exit 2 with one line."""


class UserError(Exception):
    """A bad argument or file: exit 2 with one line."""


def adb_base(serial: str | None) -> list[str]:
    exe = shutil.which("adb")
    if exe is None:
        raise NoPhone("no adb on PATH: install Android platform-tools and attach a phone with USB debugging on")
    try:
        out = subprocess.run([exe, "devices"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NoPhone(f"adb devices failed: {e}") from None
    devices = [ln.split("\t")[0] for ln in out.splitlines()[1:] if ln.strip().endswith("\tdevice")]
    if not devices:
        raise NoPhone("no phone attached: `adb devices` lists none in the 'device' state")
    if serial is None and len(devices) > 1:
        raise NoPhone(f"{len(devices)} phones attached ({', '.join(devices)}): pick one with --serial")
    if serial is not None and serial not in devices:
        raise NoPhone(f"phone {serial} is not attached (attached: {', '.join(devices)})")
    return [exe, "-s", serial or devices[0]]


def adb(base: list[str], *args: str, timeout: float = 600, check: bool = True) -> str:
    try:
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"adb {' '.join(args)} did not answer in {timeout:.0f} s") from None
    if check and r.returncode != 0:
        raise RuntimeError(f"adb {' '.join(args)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[:500]}")
    return r.stdout


def bundled_models(apk: Path) -> list[str]:
    """The model files bundled in the APK (assets/models/*), read from the APK itself."""
    try:
        with zipfile.ZipFile(apk) as z:
            names = [n[len("assets/models/"):] for n in z.namelist() if n.startswith("assets/models/")]
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{apk}: cannot read the APK's model list ({e})") from None
    return sorted(n for n in names if "/" not in n and n.lower().endswith(SUFFIXES))


def error_row(model: str, error: str) -> dict:
    return {"model": model, "status": "error", "error": error}


def run_one(base: list[str], name: str, args, out: Path) -> tuple[dict | None, list[dict]]:
    """Measures one model in a fresh app process: (the app's document or None, its rows)."""
    adb(base, "shell", "rm", "-f", f"{REMOTE_DIR}/results.json", check=False)
    adb(base, "logcat", "-c", check=False)
    adb(base, "shell", "am", "start", "-S", "-W", "-n", ACTIVITY, "--es", "models", name,
        "--ei", "runs", str(args.runs), "--ei", "min_ms", str(args.min_ms), "--ei", "warmup", str(args.warmup),
        "--ei", "threads", str(args.threads), "--ei", "max_eval", str(args.max_eval), timeout=120)
    deadline = time.monotonic() + args.timeout
    gone = 0
    while True:
        log = adb(base, "logcat", "-d", "-s", f"{TAG}:*", check=False)
        if any(f" {TAG}: DONE " in ln or ln.startswith("DONE ") or ": DONE " in ln for ln in log.splitlines()):
            break
        # A process that is gone without its DONE line died (a native crash, or killed for memory).
        if not adb(base, "shell", "pidof", PACKAGE, check=False).strip():
            gone += 1
            if gone >= 2:
                return None, [error_row(name, "the app process died before its DONE line (native crash or "
                                              "out of memory; see adb logcat)")]
        else:
            gone = 0
        if time.monotonic() > deadline:
            adb(base, "shell", "am", "force-stop", PACKAGE, check=False)
            return None, [error_row(name, f"no DONE from the app in {args.timeout} s")]
        time.sleep(2)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    local = raw / f"{name}.json"
    try:
        adb(base, "pull", f"{REMOTE_DIR}/results.json", str(local))
        doc = json.loads(local.read_text())
        rows = doc["results"]
        if not isinstance(rows, list):
            raise ValueError("results is not a list")
    except (RuntimeError, OSError, ValueError, KeyError, TypeError) as e:
        return None, [error_row(name, f"no usable results.json from the app: {e}")]
    return doc, rows


def run_on_phone(args) -> dict:
    models = [Path(m) for m in args.models]
    for m in models:
        if not m.is_file():
            raise UserError(f"{m}: no such model file")
        if m.suffix.lower() not in SUFFIXES:
            raise UserError(f"{m}: not a .tflite, .onnx or .vqm file")
    apk = Path(args.apk)
    if not apk.is_file() and (not args.no_install or not models):
        raise UserError(f"{apk}: no APK; build it with `make apk`")
    base = adb_base(args.serial)
    if not args.no_install:
        print(f"installing {apk}")
        adb(base, "install", "-r", str(apk))
    names = [m.name for m in models] if models else bundled_models(apk)
    if not names:
        raise UserError("no models: name model files, or build the APK with its bundled models")
    adb(base, "shell", "mkdir", "-p", REMOTE_DIR)
    for m in models:
        print(f"pushing {m}")
        adb(base, "push", str(m), f"{REMOTE_DIR}/{m.name}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    merged: dict | None = None
    rows: list[dict] = []
    for i, name in enumerate(names):
        if i > 0 and args.cooldown > 0:
            print(f"cooling down {args.cooldown} s")
            time.sleep(args.cooldown)
        print(f"[{i + 1}/{len(names)}] {name} (fresh process, timeout {args.timeout} s)")
        doc, got = run_one(base, name, args, out)
        if doc is not None and merged is None:
            merged = {k: v for k, v in doc.items() if k != "results"}
        rows.extend(got)
        for r in got:
            print(f"    {r.get('model')}: {r.get('status')}" + (f" ({r.get('error')})" if r.get("error") else ""))
    if merged is None:
        merged = {"schema": SCHEMA}
    merged["timestamp_ms"] = int(time.time() * 1000)
    merged["one_process_per_model"] = True
    merged["cooldown_s"] = args.cooldown
    merged["results"] = rows
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, out / "results.json")
    return merged


# ------------------------------------------------------------------ report

def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _fmt(v, spec):
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    return format(int(round(v)) if spec == "d" else v, spec)


def load_peak_mb(r: dict):
    peak = _get(r, "memory", "peak_load", "vm_rss_kb")
    before = _get(r, "memory", "before", "vm_rss_kb")
    if isinstance(peak, (int, float)) and isinstance(before, (int, float)):
        return (peak - before) / 1024
    return None


def markdown(doc: dict) -> str:
    dev = doc.get("device", {})
    lines = [f"# vqexport on {dev.get('manufacturer', '?')} {dev.get('model', '?')} "
             f"(Android API {dev.get('sdk_int', '?')}, page size {dev.get('page_size', '?')})", "",
             f"Settings: {json.dumps(doc.get('settings', {}))}; eval images: {_get(doc, 'eval_set', 'count')}; "
             f"one process per model: {doc.get('one_process_per_model', False)}", "",
             "| model | format | size KB | init ms | first ms | p50 ms | p95 ms | p99 ms | std ms | native p50 ms "
             "| top-1 | load peak +MB | VmHWM MB | XNNPACK | thermal | charging | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for r in doc.get("results", []):
        size = r.get("file_bytes")
        top1 = _get(r, "accuracy", "top1")
        status = r.get("status", "?")
        if status == "error":
            status = "error: " + str(r.get("error", "")).replace("|", "/")[:80]
        elif r.get("decode_ms") is not None:
            status = f"decoded in {r['decode_ms']:.1f} ms"
        hwm = _get(r, "memory", "after", "vm_hwm_kb")
        xnn = _get(r, "runtime", "xnnpack", "applied")
        lines.append("| " + " | ".join([
            str(r.get("model")), str(r.get("format", "-")),
            _fmt(size / 1024 if isinstance(size, (int, float)) else None, ".1f"),
            _fmt(r.get("init_ms"), ".1f"), _fmt(r.get("first_run_ms"), ".2f"),
            _fmt(_get(r, "latency_ms", "p50"), ".3f"), _fmt(_get(r, "latency_ms", "p95"), ".3f"),
            _fmt(_get(r, "latency_ms", "p99"), ".3f"), _fmt(_get(r, "latency_ms", "std"), ".3f"),
            _fmt(_get(r, "native_latency_ms", "p50"), ".3f"),
            _fmt(100 * top1, ".1f") + "%" if isinstance(top1, (int, float)) else _fmt(None, ".1f"),
            _fmt(load_peak_mb(r), ".1f"), _fmt(hwm / 1024 if isinstance(hwm, (int, float)) else None, ".1f"),
            "-" if xnn is None else ("yes" if xnn else "no"),
            str(_get(r, "device_state", "before", "thermal_status") or "-"),
            {True: "yes", False: "no"}.get(_get(r, "device_state", "before", "charging"), "-"),
            status]) + " |")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> int:
    """Size (x, log) against p50 latency (y), coloured by top-1 accuracy; returns the points drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = []
    for r in doc.get("results", []):
        kb = r.get("file_bytes")
        p50 = _get(r, "latency_ms", "p50")
        if r.get("status") == "ok" and isinstance(kb, (int, float)) and kb > 0 and isinstance(p50, (int, float)):
            top1 = _get(r, "accuracy", "top1")
            pts.append((kb / 1024, p50, 100 * top1 if isinstance(top1, (int, float)) else None, r))
    fig, ax = plt.subplots(figsize=(8, 5))
    accs = [p[2] for p in pts if p[2] is not None]
    vmin, vmax = (min(accs), max(accs)) if accs else (0, 100)
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    sc = None
    for kb, p50, acc, r in pts:
        marker = {"tflite": "o", "onnx": "s"}.get(r.get("format"), "x")
        if acc is None:
            ax.scatter(kb, p50, marker=marker, facecolors="none", edgecolors="grey", s=60)
        else:
            sc = ax.scatter(kb, p50, c=[acc], cmap="viridis", vmin=vmin, vmax=vmax, marker=marker, s=60)
        label = r["model"] + (f"\n{acc:.1f}%" if acc is not None else "")
        ax.annotate(label, (kb, p50), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="top-1 accuracy (%)")
    dev = doc.get("device", {})
    ax.set(xlabel="model file size (KB, log scale)", ylabel="p50 latency per image (ms)",
           title=f"size vs latency vs accuracy on {dev.get('manufacturer', '?')} {dev.get('model', '?')}"
                 " (o tflite, s onnx)")
    if pts:
        ax.set_xscale("log")
        ax.margins(x=0.3, y=0.15)  # room for the labels beside the points
    else:
        ax.text(0.5, 0.5, "no model ran", transform=ax.transAxes, ha="center")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return len(pts)


def report(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "android_bench.md").write_text(markdown(doc))
    n = plot(doc, out / "android_bench.png")
    print(f"wrote {out / 'android_bench.md'} and {out / 'android_bench.png'} ({n} model(s) plotted)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tools/android_bench.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*",
                   help=".tflite/.onnx/.vqm files to push and run (none: the APK's bundled ones)")
    p.add_argument("--apk", default=str(DEFAULT_APK), help="the demo APK (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "out" / "android-bench"), help="output folder (default: %(default)s)")
    p.add_argument("--serial", help="adb serial of the phone, when several are attached")
    p.add_argument("--no-install", action="store_true", help="use the app already installed")
    p.add_argument("--runs", type=int, default=50, help="minimum timed runs per model (default 50)")
    p.add_argument("--min-ms", type=int, default=1000, help="minimum timed milliseconds per model (default 1000)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs (default 10)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--max-eval", type=int, default=0, help="evaluate at most this many images (0: all 1000)")
    p.add_argument("--cooldown", type=float, default=0, help="seconds to wait between two models (default 0)")
    p.add_argument("--timeout", type=int, default=900, help="seconds to wait for each model (default 900)")
    p.add_argument("--from-json", help="skip the phone: build the report from a results.json")
    args = p.parse_args(argv)
    try:
        if args.cooldown < 0 or args.timeout < 1:
            raise UserError("--cooldown must be >= 0 and --timeout >= 1")
        if args.from_json:
            try:
                doc = json.loads(Path(args.from_json).read_text())
            except (OSError, ValueError) as e:
                raise UserError(f"{args.from_json}: not a readable results.json ({e})") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
                raise UserError(f"{args.from_json}: no results list; not an android_bench results.json")
            report(doc, Path(args.out))
            return 0
        doc = run_on_phone(args)
    except (NoPhone, UserError) as e:
        print(f"android_bench: {e}")
        return 2
    report(doc, Path(args.out))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
