"""Benchmark models on an Android phone with the vqexport demo app, over adb.

It installs the APK, pushes the models to the app's external files folder, starts the app
headless with those models, waits for it to finish, pulls its results.json and writes a
markdown table and a PNG (model size against top-1 accuracy and against p50 latency).

Example:
    make apk
    .venv/bin/python tools/android_bench.py out/mnist_kmeans.tflite out/mnist_kmeans.onnx \\
        out/mnist_kmeans.vqm --out out/android-bench

    # only the report, from a results.json pulled before (no phone needed):
    .venv/bin/python tools/android_bench.py --from-json out/android-bench/results.json

Without adb or without a phone in the "device" state it prints one line saying so and exits 2.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = "dev.vqexport.demo"
ACTIVITY = f"{PACKAGE}/.MainActivity"
REMOTE_DIR = f"/sdcard/Android/data/{PACKAGE}/files"
TAG = "VQXBENCH"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APK = ROOT / "android-demo" / "build" / "vqexport-demo.apk"


class NoPhone(Exception):
    """No adb, or no phone attached: exit 2 with one line."""


def adb_base(serial: str | None) -> list[str]:
    exe = shutil.which("adb")
    if exe is None:
        raise NoPhone("no adb on PATH: install Android platform-tools and attach a phone with USB debugging on")
    base = [exe] + (["-s", serial] if serial else [])
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
    return base


def adb(base: list[str], *args: str, timeout: float = 600, check: bool = True) -> str:
    r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"adb {' '.join(args)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[:500]}")
    return r.stdout


def run_on_phone(args) -> dict:
    base = adb_base(args.serial)
    models = [Path(m) for m in args.models]
    for m in models:
        if not m.is_file():
            raise SystemExit(f"android_bench: {m}: no such model file")
        if m.suffix.lower() not in (".tflite", ".onnx", ".vqm"):
            raise SystemExit(f"android_bench: {m}: not a .tflite, .onnx or .vqm file")
    if not args.no_install:
        apk = Path(args.apk)
        if not apk.is_file():
            raise SystemExit(f"android_bench: {apk}: no APK; build it with `make apk`")
        print(f"installing {apk}")
        adb(base, "install", "-r", str(apk))
    adb(base, "shell", "mkdir", "-p", REMOTE_DIR)
    for m in models:
        print(f"pushing {m}")
        adb(base, "push", str(m), f"{REMOTE_DIR}/{m.name}")
    adb(base, "shell", "rm", "-f", f"{REMOTE_DIR}/results.json", check=False)
    adb(base, "logcat", "-c", check=False)
    names = ",".join(m.name for m in models) if models else "all"
    adb(base, "shell", "am", "start", "-S", "-n", ACTIVITY, "--es", "models", names,
        "--ei", "runs", str(args.runs), "--ei", "min_ms", str(args.min_ms), "--ei", "warmup", str(args.warmup),
        "--ei", "threads", str(args.threads), "--ei", "max_eval", str(args.max_eval))
    print(f"running {names} on the phone (timeout {args.timeout} s)")
    deadline = time.time() + args.timeout
    while True:
        log = adb(base, "logcat", "-d", "-s", f"{TAG}:*", check=False)
        if " DONE " in log or "DONE /" in log:
            break
        if time.time() > deadline:
            raise SystemExit(f"android_bench: no DONE from the app in {args.timeout} s; last log:\n{log[-2000:]}")
        time.sleep(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    adb(base, "pull", f"{REMOTE_DIR}/results.json", str(out / "results.json"))
    return json.loads((out / "results.json").read_text())


# ------------------------------------------------------------------ report

def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _fmt(v, spec):
    if v is None:
        return "-"
    return format(int(round(v)) if spec == "d" else v, spec)


def markdown(doc: dict) -> str:
    dev = doc.get("device", {})
    lines = [f"# vqexport on {dev.get('manufacturer', '?')} {dev.get('model', '?')} "
             f"(Android API {dev.get('sdk_int', '?')})", "",
             f"Settings: {json.dumps(doc.get('settings', {}))}; eval images: {_get(doc, 'eval_set', 'count')}", "",
             "| model | format | size KB | init ms | p50 ms | p90 ms | p95 ms | top-1 | PSS +KB | VmHWM KB | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in doc.get("results", []):
        size = r.get("file_bytes")
        top1 = _get(r, "accuracy", "top1")
        status = r.get("status", "?")
        if status == "error":
            status = "error: " + str(r.get("error", "")).replace("|", "/")[:80]
        elif r.get("decode_ms") is not None:
            status = f"decoded in {r['decode_ms']:.1f} ms"
        lines.append("| " + " | ".join([
            str(r.get("model")), str(r.get("format")), _fmt(size / 1024 if size is not None else None, ".1f"),
            _fmt(r.get("init_ms"), ".1f"), _fmt(_get(r, "latency_ms", "p50"), ".3f"),
            _fmt(_get(r, "latency_ms", "p90"), ".3f"), _fmt(_get(r, "latency_ms", "p95"), ".3f"),
            _fmt(100 * top1 if top1 is not None else None, ".1f") + ("%" if top1 is not None else ""),
            _fmt(_get(r, "memory", "delta", "pss_total_kb"), "d"), _fmt(_get(r, "memory", "after", "vm_hwm_kb"), "d"),
            status]) + " |")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc.get("results", []) if r.get("status") == "ok" and r.get("file_bytes")]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        kb = r["file_bytes"] / 1024
        top1 = _get(r, "accuracy", "top1")
        p50 = _get(r, "latency_ms", "p50")
        marker = {"tflite": "o", "onnx": "s", "vqm": "^"}.get(r.get("format"), "x")
        if top1 is not None:
            ax1.scatter(kb, 100 * top1, marker=marker)
            ax1.annotate(r["model"], (kb, 100 * top1), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if p50 is not None:
            ax2.scatter(kb, p50, marker=marker)
            ax2.annotate(r["model"], (kb, p50), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax1.set(xlabel="model file size (KB)", ylabel="top-1 accuracy (%)", title="size vs accuracy")
    ax2.set(xlabel="model file size (KB)", ylabel="p50 latency (ms)", title="size vs latency")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return bool(rows)


def report(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "android_bench.md").write_text(markdown(doc))
    plot(doc, out / "android_bench.png")
    print(f"wrote {out / 'android_bench.md'} and {out / 'android_bench.png'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tools/android_bench.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help=".tflite/.onnx/.vqm files to push and run (none: the bundled ones)")
    p.add_argument("--apk", default=str(DEFAULT_APK), help="the demo APK (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "out" / "android-bench"), help="output folder (default: %(default)s)")
    p.add_argument("--serial", help="adb serial of the phone, when several are attached")
    p.add_argument("--no-install", action="store_true", help="use the app already installed")
    p.add_argument("--runs", type=int, default=50, help="minimum timed runs per model (default 50)")
    p.add_argument("--min-ms", type=int, default=1000, help="minimum timed milliseconds per model (default 1000)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs (default 10)")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--max-eval", type=int, default=0, help="evaluate at most this many images (0: all 1000)")
    p.add_argument("--timeout", type=int, default=900, help="seconds to wait for the app (default 900)")
    p.add_argument("--from-json", help="skip the phone: build the report from a results.json")
    args = p.parse_args(argv)
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        report(doc, Path(args.out) if args.out else Path(args.from_json).parent)
        return 0
    try:
        doc = run_on_phone(args)
    except NoPhone as e:
        print(f"android_bench: {e}")
        return 2
    report(doc, Path(args.out))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
