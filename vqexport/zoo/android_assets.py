"""The models and evaluation set bundled into the Android demo app.

    python -m vqexport.zoo.android_assets OUTDIR

Writes OUTDIR/models/: the reference CNN as dense .tflite and .onnx, k-means 16 and PQ
(d=8, k=16) as .tflite, .onnx and .vqm, k-means 16 also as a decode="load" .tflite; and
OUTDIR/eval/mnist1000.vqds: the 1,000 mnist5k test digits in the app's format (android-demo/README.md):
    b"VQDS", u32 version=1, u32 n, u32 channels, u32 height, u32 width   (little-endian)
    n*c*h*w u8 pixels (0..255, image after image, channel/row/column), then n u8 labels.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from vqexport import write_vqm


def write_eval_set(path: Path) -> None:
    from ..evaluate.datasets import mnist5k
    from ..util.fileio import atomic_path

    x, y = mnist5k("test")
    n, c, h, w = x.shape
    pixels = np.rint(x * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"VQDS" + struct.pack("<5I", 1, n, c, h, w) + pixels.tobytes() + y.astype(np.uint8).tobytes())


def main(argv=None) -> int:
    import vqexport
    from vqexport.formats.onnx import export_dense_onnx
    from vqexport.formats.tflite.export import export_dense_tflite

    from .reference import reference_path

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m vqexport.zoo.android_assets OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    model = vqexport.load_model(reference_path())
    m = out / "models"
    export_dense_tflite(model, m / "mnist_dense.tflite", model.input, labels=model.labels)
    export_dense_onnx(model, m / "mnist_dense.onnx", model.input)
    for name, method, params in (("mnist_kmeans16", "kmeans", {"k": 16}), ("mnist_pq_d8_k16", "pq", {"d": 8, "k": 16})):
        cm = vqexport.compress(model, method, **params)
        write_vqm(cm, m / f"{name}.vqm")
        vqexport.to_tflite(cm, m / f"{name}.tflite", model=model)
        vqexport.to_onnx(cm, m / f"{name}.onnx", model=model)
        if method == "kmeans":  # the app's loader decodes it before the interpreter: dense speed
            vqexport.to_tflite(cm, m / f"{name}_load.tflite", model=model, decode="load")
    write_eval_set(out / "eval" / "mnist1000.vqds")
    for f in sorted(out.rglob("*.*")):
        print(f"{f.stat().st_size:>10,}  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
