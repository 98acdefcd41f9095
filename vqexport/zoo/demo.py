"""`make demo`: the reference CNN, compressed with k-means k=16, written in every format, measured.

    python -m vqexport.zoo.demo [--out out] [--quiet]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from vqexport import write_vqm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out", help="folder for the model files (default: out/)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as in the CLI: no converter C++ noise

    import vqexport
    from vqexport.evaluate.accuracy import evaluate_file
    from vqexport.evaluate.datasets import mnist5k
    from vqexport.util.report import human_bytes, table
    from vqexport.zoo.reference import reference_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    say("reference CNN: training on mnist5k, or reusing the cached weights ...")
    dense = out / "model.pt"
    shutil.copyfile(reference_path(quiet=args.quiet), dense)

    model = vqexport.load_model(dense)
    say("compressing the weights (the conv and dense layers) with k-means, k=16 ...")
    cm = vqexport.compress(model, "kmeans", k=16, seed=0, quiet=args.quiet)
    files = [("dense TorchScript", dense), ("k-means 16 .vqm", out / "model.vqm")]
    write_vqm(cm, files[1][1])
    for label, suffix, export, options in (("k-means 16 .onnx", ".onnx", vqexport.to_onnx, {}),
                                           ("k-means 16 .tflite", ".tflite", vqexport.to_tflite, {"decode": "load"})):
        say(f"writing {label} ...")  # decode="load": the conv filters stay constants, so XNNPACK runs them
        export(cm, out / f"model{suffix}", model=model, **options)
        files.append((label, out / f"model{suffix}"))

    images = mnist5k("test")
    rows = []
    base = None
    for label, path in files:
        r = evaluate_file(path, "mnist5k", images=images)
        base = base if base is not None else r
        rows.append([label, str(path), human_bytes(r["bytes"]), f"{base['bytes'] / r['bytes']:.2f}x",
                     f"{100 * r['top1']:.2f}%", f"{100 * (r['top1'] - base['top1']):+.2f}", f"{100 * r['top5']:.2f}%"])
    print("reference CNN on the 1,000 mnist5k test digits (convs and dense layers, k-means k=16, .tflite decode=load)")
    print(table(rows, ["model", "file", "size", "smaller", "top-1", "change", "top-5"]))
    print(f"compressed layers {cm.summary()['layer_compression']:.2f}x smaller; "
          f"ideal payload {human_bytes(cm.ideal_bits() / 8)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
