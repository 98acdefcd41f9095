"""Time write_vqm, packed against auto (Huffman where smaller), on one k-means layer of Laplace
(or uniform) weights: how much the index coding adds to a save. Best of --repeat, in one process.

    PYTHONPATH=. .venv/bin/python tools/bench_vqm_write.py --rows 4096 --cols 6144 --k 16
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time

import numpy as np
import torch

import vqexport
from vqexport import write_vqm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=6144)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", choices=("laplace", "uniform"), default="laplace",
                    help="uniform: indices about equally frequent, so auto stores them packed")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    layer = torch.nn.Linear(a.cols, a.rows, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(getattr(rng, a.weights)(size=(a.rows, a.cols)).astype(np.float32)))
    t0 = time.perf_counter()
    model = vqexport.compress(torch.nn.Sequential(layer), "kmeans", k=a.k, seed=a.seed)
    fit = time.perf_counter() - t0
    print(f"{a.rows}x{a.cols} = {a.rows * a.cols:,} indices, {a.weights} weights, kmeans k={a.k}: compress {fit:.2f} s")
    with tempfile.TemporaryDirectory() as d:
        for coding in ("packed", "auto"):
            path = os.path.join(d, f"{coding}.vqm")
            best = float("inf")
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                write_vqm(model, path, index_coding=coding)
                best = min(best, time.perf_counter() - t0)
            with open(path, "rb") as f:
                md5 = hashlib.md5(f.read()).hexdigest()[:12]
            size = os.path.getsize(path)
            print(f"write_vqm {coding:6s}: {best:.3f} s (best of {a.repeat}), {size:,} bytes, md5 {md5}")


if __name__ == "__main__":
    main()
