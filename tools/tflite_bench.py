"""Latency of compressed .tflite files (decode once / every-run / load) against the dense baseline.

    python tools/tflite_bench.py --model big4096 --method kmeans --k 16 --runs 50
    python tools/tflite_bench.py --model reference

Each file runs in the LiteRT Interpreter with num_threads=2: init (for "load" it includes the
decode into the buffer handed to the interpreter), the first invoke timed on its own (for "once"
it includes the decode), then 5 warm-up runs, then --runs timed runs; p50 is reported.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def big_model(width: int = 4096):
    """A 1x1x64x64 input flattened into one width x 4096 layer, then a 10-way head."""
    import torch

    torch.manual_seed(0)
    side = int(round(width ** 0.5))
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(side * side, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, 10)).eval(), [1, 1, side, side]


def time_tflite(path, runs: int = 50, threads: int = 2, interpreter=None, **kwargs) -> dict:
    if interpreter is None:
        from ai_edge_litert.interpreter import Interpreter as interpreter
    from vqexport.formats.tflite.external import interpreter_source

    t0 = time.perf_counter()
    with interpreter_source(path) as source:
        it = interpreter(**source, num_threads=threads, **kwargs)
        it.allocate_tensors()
    init = time.perf_counter() - t0
    inp = it.get_input_details()[0]
    x = np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32)
    it.set_tensor(inp["index"], x)
    t0 = time.perf_counter()
    it.invoke()
    first = time.perf_counter() - t0
    for _ in range(5):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return {"init_ms": round(init * 1e3, 2), "first_ms": round(first * 1e3, 2),
            "p50_ms": round(float(np.median(times)) * 1e3, 3),
            "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 3), "runs": runs}


def main(argv=None) -> int:
    import vqexport
    from vqexport.formats.tflite.export import export_dense_tflite, export_tflite
    from vqexport.load import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="big4096", help="big4096 or reference")
    p.add_argument("--method", default="kmeans")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--out", default=None, help="folder to keep the .tflite files in")
    a = p.parse_args(argv)
    if a.model == "reference":
        from vqexport.zoo import reference_model

        lm = reference_model()
        lm = lm if hasattr(lm, "module") else load_model(lm)
    else:
        module, shape = big_model()
        lm = load_model(module)
        lm.input = {"shape": shape, "layout": "NCHW", "mean": [0.0], "std": [1.0]}
    out = Path(a.out or tempfile.mkdtemp(prefix="vqexport-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    params = {"k": a.k} if a.method in ("kmeans", "pq", "rq") else {}
    cm = vqexport.compress(lm, a.method, seed=0, **params)
    rows = {}
    dense = export_dense_tflite(lm, out / "dense.tflite")
    rows["dense"] = {"bytes": dense["bytes"], **time_tflite(out / "dense.tflite", a.runs)}
    for mode in ("once", "every-run", "load"):
        r = export_tflite(cm, out / f"{mode}.tflite", model=lm, decode=mode)
        rows[mode] = {"bytes": r["bytes"], "ideal_bytes": r["ideal_bytes"],
                      **time_tflite(out / f"{mode}.tflite", a.runs)}
    base = rows["dense"]["p50_ms"]
    for r in rows.values():
        r["x_dense"] = round(r["p50_ms"] / base, 2)
    print(json.dumps({"model": a.model, "method": a.method, "k": a.k, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
