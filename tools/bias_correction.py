"""Why k-means with k=2 loses more than binarization at the same rate, and what bias correction does.

    .venv/bin/python tools/bias_correction.py [--images 2048] [--types conv,linear] [--md FILE] [--json]

On the paper-shaped CNN trained on Fashion-MNIST (vqexport.zoo.reference), for each method:
top-1 on the 10,000 test images of the plain fit, the plain fit with bias correction
(b += (W - W') E[x] on --images training images, no refit), the calibrated fit (H-weighted
codebook and GPTQ-style error feedback), and the calibrated fit with bias correction.

Then, per compressed layer of k=2 and binary, the two numbers that explain the table:
- the sign flips: the share of weights whose quantized value has the other sign (k-means puts
  its boundary at the midpoint of two unequal centroids, not at 0);
- the attenuation c = <W', W> / <W, W>: an MSE-optimal quantizer returns a shrunken weight
  (c < 1). A ReLU network is positively homogeneous, so a layer whose output shrinks by c almost
  keeps its argmax; mean-matching bias correction adds (1 - c) W E[x] back to the bias and breaks
  the balance between the shrunken signal and its bias.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

METHODS = {"binary": ("binary", {}), "kmeans-k2": ("kmeans", {"k": 2}), "kmeans-k4": ("kmeans", {"k": 4}),
           "kmeans-k16": ("kmeans", {"k": 16}), "pq-d4-k16": ("pq", {"d": 4, "k": 16}),
           "vq-d8-k256": ("vq", {"d": 8, "k": 256}), "rq-t2-k16": ("rq", {"stages": 2, "k": 16}),
           "svd-r64": ("svd", {"rank": 64})}
VARIANTS = {"plain": None, "plain + bias correction": {"refit": False, "bias_correction": True},
            "calibrated": {"refit": True}, "calibrated + bias correction": {"refit": True, "bias_correction": True}}


def run(images: int, types: tuple[str, ...], seed: int, log) -> dict:
    import dataclasses
    import warnings

    import numpy as np

    import vqexport
    from vqexport.calibrate import calibration
    from vqexport.calibrate.refit import applies
    from vqexport.config import QuantConfig
    from vqexport.errors import ConfigError
    from vqexport.evaluate.accuracy import predict
    from vqexport.evaluate.datasets import fashion
    from vqexport.evaluate.runtimes import TorchRuntime
    from vqexport.torch_bridge import decoded_state_dict
    from vqexport.zoo.reference import reference_path

    warnings.simplefilter("ignore")
    model = vqexport.load_model(reference_path("fashion"))
    x, y = fashion("test")
    dense = predict(TorchRuntime(model.module, model.input), x).argmax(1)
    base = calibration(model, "fashion", images, seed)
    out = {"model": model.name, "images": images, "types": list(types), "seed": seed,
           "dense_top1": float(np.mean(dense == y)), "rows": [], "layers": []}
    for name, (method, settings) in METHODS.items():
        row = {"config": name}
        for variant, options in VARIANTS.items():
            if options and options.get("refit") and not applies(QuantConfig(method, **settings)):
                row[variant] = None
                continue
            calib = None if options is None else dataclasses.replace(base, cache=base.cache, **options)
            t0 = time.perf_counter()
            try:
                cm = vqexport.compress(model, method, types=types, seed=seed, calib=calib, **settings)
            except ConfigError as e:
                row[variant] = {"error": str(e)}
                continue
            pred = predict(TorchRuntime(vqexport.to_torch(cm, model), model.input), x).argmax(1)
            row[variant] = {"top1": float(np.mean(pred == y)), "agreement": float(np.mean(pred == dense)),
                            "seconds": time.perf_counter() - t0}
            log(f"{name:12s} {variant:30s} {100 * row[variant]['top1']:.2f} %")
            if variant == "plain" and name in ("binary", "kmeans-k2"):
                state, dec = model.state_dict(), decoded_state_dict(cm)
                for layer in cm.metadata["layers"]:
                    w = state[layer].detach().double().numpy().ravel()
                    q = dec[layer].double().numpy().ravel()
                    out["layers"].append({"config": name, "layer": layer, "codebook": cm[layer].codebook().tolist(),
                                          "sign_flips": float(np.mean(np.sign(w) != np.sign(q))),
                                          "attenuation": float(w @ q / (w @ w))})
        out["rows"].append(row)
    return out


def render(res: dict, command: str) -> str:
    lines = ["## Bias correction, and k-means k=2 against binarization", "", f"Command: `{command}`", "",
             f"Model `{res['model']}` (dense top-1 {100 * res['dense_top1']:.2f} %), types "
             f"{','.join(res['types'])}, {res['images']} calibration images from the training split, "
             "10,000 test images. Cells: top-1 (agreement with the dense model's top-1). "
             "'-': the method is not refitted (rq, svd).", "",
             "| config | " + " | ".join(VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for row in res["rows"]:
        cells = []
        for v in VARIANTS:
            r = row.get(v)
            cells.append("-" if r is None else f"error: {r['error']}" if "error" in r
                         else f"{100 * r['top1']:.2f} % ({100 * r['agreement']:.1f} %)")
        lines.append(f"| {row['config']} | " + " | ".join(cells) + " |")
    lines += ["", "Per layer, plain fit: codebook, share of weights whose sign flips, attenuation "
              "c = <W', W> / <W, W>.", "", "| config | layer | codebook | sign flips | c |", "|---|---|---|---:|---:|"]
    for r in res["layers"]:
        cb = ", ".join(f"{v:.4f}" for v in r["codebook"][:4])
        lines.append(f"| {r['config']} | {r['layer']} | {cb} | {100 * r['sign_flips']:.2f} % "
                     f"| {r['attenuation']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--types", default="conv,linear")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--md", help="write the tables (markdown) to this file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.images, tuple(args.types.split(",")), args.seed, lambda m: print(m, file=sys.stderr, flush=True))
    command = "python tools/bias_correction.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(res, command)
    if args.md:
        Path(args.md).write_text(text)
    print(json.dumps(res, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
