"""torchvision architectures (random weights) -> kmeans k=16 -> .tflite: size against the bound, and agreement.

    .venv/bin/python tools/zoo_tflite.py --arch alexnet,resnet18 --decode once --out docs/results/zoo_tflite.json

Each architecture is one row; a failure is a row naming the error, never a skip. Agreement is
LiteRT (num_threads=2) against to_torch(cm) on --inputs random ImageNet-shaped inputs:
max |diff| / max |logit| and top-1 equality.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from vqexport import to_torch

ARCHS = ["alexnet", "vgg11", "vgg16", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
         "efficientnet_b0", "densenet121", "convnext_tiny", "regnet_y_400mf", "vit_b_16"]


def run_arch(arch: str, decode: str, n_inputs: int, workdir: Path) -> dict:
    import torch
    import torchvision

    import vqexport
    from vqexport.formats.tflite.export import export_tflite
    from vqexport.load import IMAGENET_INPUT, load_model

    row = {"arch": arch, "decode": decode}
    t0 = time.perf_counter()
    try:
        torch.manual_seed(0)
        lm = load_model(torchvision.models.get_model(arch, weights=None).eval())
        lm.input = dict(IMAGENET_INPUT)
        cm = vqexport.compress(lm, "kmeans", k=16, seed=0)
        row["dense_layers"] = len(cm.compressed)
        path = workdir / f"{arch}.tflite"
        r = export_tflite(cm, path, model=lm, decode=decode)
        row.update(bytes=r["bytes"], ideal_bytes=int(r["ideal_bytes"]), bound_bytes=int(r["bound_bytes"]),
                   within_bound=r["within_bound"], ratio=round(r["bytes"] / r["ideal_bytes"], 4),
                   dense_bytes=int(cm.dense_bits() // 8))
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((n_inputs, 3, 224, 224)).astype(np.float32))
        with torch.no_grad():
            ref = to_torch(cm, lm)(x).numpy()
        from ai_edge_litert.interpreter import Interpreter

        from vqexport.formats.tflite.external import interpreter_source

        with interpreter_source(path) as source:
            it = Interpreter(**source, num_threads=2)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        it.allocate_tensors()
        got = []
        for xi in x.permute(0, 2, 3, 1).numpy():
            it.set_tensor(inp["index"], np.ascontiguousarray(xi[None]))
            it.invoke()
            got.append(it.get_tensor(out["index"])[0].copy())
        got = np.stack(got)
        row["rel_diff"] = float(np.abs(got - ref).max() / np.abs(ref).max())
        row["top1_agree"] = bool(np.array_equal(got.argmax(1), ref.argmax(1)))
        row["status"] = "ok" if row["within_bound"] and row["rel_diff"] <= 1e-4 else "MISMATCH"
        path.unlink()
    except Exception as e:  # noqa: BLE001 - every failure is a named row
        row["status"] = "FAIL"
        row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
        row["trace"] = traceback.format_exc().splitlines()[-3:]
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=",".join(ARCHS), help="comma list (default: all)")
    p.add_argument("--decode", default="once", choices=["once", "every-run"])
    p.add_argument("--inputs", type=int, default=2)
    p.add_argument("--out", default=None, help="append the rows (JSON lines) to this file")
    a = p.parse_args(argv)
    archs = [s for s in a.arch.split(",") if s]
    unknown = [s for s in archs if s not in ARCHS]
    if unknown:
        p.error(f"unknown arch {unknown[0]}; choose from {', '.join(ARCHS)}")
    with tempfile.TemporaryDirectory(prefix="vqexport-zoo-tflite-") as tmp:
        for arch in archs:
            row = run_arch(arch, a.decode, a.inputs, Path(tmp))
            line = json.dumps(row)
            print(line, flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
