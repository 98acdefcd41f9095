"""Latency and memory of one model file, measured the way onnxruntime_perf_test and
TFLite's benchmark_model do: session creation, first run, warm-up, then N timed runs.

The same code times .onnx, .tflite and TorchScript .pt (through evaluate.runtimes), batch 1,
on one fixed seeded N(0, 1) input of the model's shape (any rank; --input-shape, channels
first, for a file that does not say or to override it), put in the file's own layout before
the clock. run_bench measures in a fresh subprocess so that the peak RSS is the model's and
its runtime's, not the caller's:

    python -m vqexport.evaluate.bench model.onnx --runs 100 --json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import VqexportError
from ..layouts import NAMES, parse_shape
from . import EvalNote

_RUNTIME_MODULE = {".onnx": "onnxruntime", ".tflite": "ai_edge_litert.interpreter"}
NOTE = "vqexport: note: "  # how the child prints a note, for run_bench to pass on


def run_bench(path, runs: int = 100, warmup: int = 10, threads: int | None = None,
              input_shape=None, timeout: float | None = 3600, layout: str | None = None) -> dict:
    """Benchmark `path` in a fresh Python process and return its measurements (see measure)."""
    if runs < 1 or warmup < 0:
        raise VqexportError("--runs must be at least 1 and --warmup at least 0")
    cmd = [sys.executable, "-m", "vqexport.evaluate.bench", str(path), "--runs", str(runs),
           "--warmup", str(warmup), "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    if input_shape:
        cmd += ["--input-shape", ",".join(str(int(d)) for d in input_shape)]
    if layout:
        cmd += ["--layout", layout]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise VqexportError(f"{path}: the benchmark did not finish within {timeout:.0f} s") from None
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {p.returncode}"
        if last.startswith("error: "):  # the child's own one-line user error, which names the file
            raise VqexportError(last[len("error: "):])
        raise VqexportError(f"{path}: the benchmark failed: {last}")
    for line in p.stderr.splitlines():  # the child's notes (a guessed layout), passed on as ours
        if line.startswith(NOTE):
            warnings.warn(line[len(NOTE):], EvalNote, stacklevel=2)
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(path, runs: int = 100, warmup: int = 10, threads: int | None = None, input_shape=None,
            layout: str | None = None) -> dict:
    """Time one model in this process. Times are milliseconds, memory MiB."""
    import importlib

    from .runtimes import open_runtime

    path = Path(path)
    if not path.is_file():
        raise VqexportError(f"{path}: no such file")
    suffix = path.suffix.lower()
    # Import the runtime before the clock and the baseline, so neither counts the import.
    if suffix in _RUNTIME_MODULE:
        importlib.import_module(_RUNTIME_MODULE[suffix])
    else:
        import torch  # noqa: F401
    baseline = _rss_mib()
    t0 = time.perf_counter()
    rt = open_runtime(path, threads=threads, layout=layout)
    init_ms = (time.perf_counter() - t0) * 1e3
    after_init = _rss_mib()
    if input_shape:
        rt.set_input_shape([1, *[int(d) for d in input_shape][1:]])
    shape = rt.input_shape
    if not shape:
        raise VqexportError(f"{path}: the model does not say its input shape; pass --input-shape, e.g. 1,3,224,224 "
                            "(channels first)")
    # Checked and transposed once, outside the clock: the runs time the model only.
    x = rt.to_native(np.random.default_rng(0).standard_normal(shape).astype(np.float32))

    t0 = time.perf_counter()
    out = rt.run_native(x)
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        rt.run_native(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        rt.run_native(x)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    peak = _peak_rss_mib()
    return {
        "file": str(path), "format": suffix.lstrip(".") or "?", "bytes": path.stat().st_size,
        "runtime": rt.version(), "threads": threads or "default", "input_shape": shape,
        "input_layout": rt.layout, "native_input_shape": list(x.shape),
        "output_shape": list(np.shape(out)),
        "init_ms": round(init_ms, 3), "first_run_ms": round(first_ms, 3), "warmup": warmup, "runs": runs,
        "min_ms": _r(times.min()), "p50_ms": _r(np.percentile(times, 50)), "p90_ms": _r(np.percentile(times, 90)),
        "p95_ms": _r(np.percentile(times, 95)), "max_ms": _r(times.max()), "mean_ms": _r(times.mean()),
        "std_ms": _r(times.std()),
        "baseline_rss_mib": _r(baseline), "rss_after_init_mib": _r(after_init), "peak_rss_mib": _r(peak),
        "model_peak_rss_mib": _r(peak - baseline),
    }


def format_bench(result: dict) -> str:
    """A short human table of one run_bench result."""
    r = result
    rows = [
        ("file", f"{r['file']} ({r['bytes'] / 2**20:.2f} MiB, {r['format']})"),
        ("runtime", f"{r['runtime']}, threads {r['threads']}, input {'x'.join(map(str, r['input_shape']))}"),
        ("session creation", f"{r['init_ms']:.1f} ms"),
        ("first run", f"{r['first_run_ms']:.2f} ms"),
        (f"{r['runs']} runs (after {r['warmup']} warm-up)",
         f"min {r['min_ms']:.3f}  p50 {r['p50_ms']:.3f}  p90 {r['p90_ms']:.3f}  p95 {r['p95_ms']:.3f}  "
         f"mean {r['mean_ms']:.3f} ms"),
        ("peak RSS", f"{r['peak_rss_mib']:.1f} MiB ({r['model_peak_rss_mib']:.1f} MiB above the "
                     f"{r['baseline_rss_mib']:.1f} MiB runtime baseline)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _note(message, category, filename, lineno, file=None, line=None):
    """The child's notes as one line each, for run_bench to pass on."""
    if issubclass(category, EvalNote):
        print(f"{NOTE}{message}", file=sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


def _r(v) -> float:
    return round(float(v), 4)


def _rss_mib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return _peak_rss_mib()


def _peak_rss_mib() -> float:
    """This process's peak RSS. Linux: VmHWM, which exec resets; ru_maxrss would also count the
    parent's memory, carried into a forked child (run_bench's subprocess) across the exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vqexport.evaluate.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("file")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--input-shape", default=None, help="channels first, e.g. 1,3,224,224 or 1,64")
    p.add_argument("--layout", choices=NAMES, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    warnings.showwarning = _note
    try:
        shape = parse_shape(a.input_shape) if a.input_shape else None
        result = measure(a.file, a.runs, a.warmup, a.threads, shape, a.layout)
    except VqexportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result) if a.json else format_bench(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
