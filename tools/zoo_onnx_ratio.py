"""Whole-file .onnx ratio of torchvision models compressed whole (k-means k=16) against their dense
ONNX export, with the raw tensors in float32 and in float16 (--raw-dtype float16).

    python tools/zoo_onnx_ratio.py --models densenet121,mobilenet_v2 [--json]

Random seeded weights (the sizes do not depend on them); input 1x3x224x224. A quicker companion of
tools/zoo_whole.py, for the ONNX column alone.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import warnings

MODELS = "densenet121,mobilenet_v2,efficientnet_b0,regnet_y_400mf,mobilenet_v3_small,resnet18"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=MODELS, help=f"comma list of torchvision names (default: {MODELS})")
    ap.add_argument("--json", action="store_true", help="one JSON object per model instead of text")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # the half-precision notes name every tensor; the ratios are the point

    import torch
    import torchvision

    import vqexport
    from vqexport.formats.onnx import export_dense_onnx

    work = tempfile.mkdtemp(prefix="vqexport-onnx-ratio-")
    for name in args.models.split(","):
        torch.manual_seed(0)
        lm = vqexport.load_model(torchvision.models.get_model(name, weights=None).eval())
        lm.input = {"shape": [1, 3, 224, 224], "layout": "NCHW"}
        dense = export_dense_onnx(lm, f"{work}/dense.onnx")["bytes"]
        row = {"model": name, "dense_bytes": dense}
        for raw in ("float32", "float16"):
            config = vqexport.CompressConfig(quant=vqexport.QuantConfig("kmeans", k=16), raw_dtype=raw)
            info = vqexport.to_onnx(vqexport.compress(lm, config=config), f"{work}/vq.onnx", model=lm)
            row[f"ratio_raw_{raw}"] = round(dense / info["bytes"], 3)
        print(json.dumps(row) if args.json else
              f"{name:20s} raw float32 {row['ratio_raw_float32']:.2f}x  raw float16 {row['ratio_raw_float16']:.2f}x",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
