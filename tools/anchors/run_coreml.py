"""coremltools' PostTrainingPalettizer (or SKMPalettizer) on a whole reference network; run in .venv-anchors.

    .venv-anchors/bin/python tools/anchors/run_coreml.py --weights state.npz \\
        --arch vqexport.zoo.cnn:MnistCNN --bits 4 --granularity per_grouped_channel --group-size 8 --out p.npz

The network is rebuilt from its class (the project's own module, imported from this checkout)
and the float32 state dict; PostTrainingPalettizer runs with its defaults apart from n_bits,
granularity and group_size (a group is group_size output channels sharing one LUT). SKMPalettizer
(--algorithm skm) weights its k-means by the squared gradients of the cross-entropy on the
--calib images, one image per calibration sample. Writes the
palettized state dict, every tensor, to --out, with a JSON `info`: seconds (compress() alone),
versions, settings, and `palettized`: each weight holding at most 2^n_bits distinct values per
group, with its n_bits and group size, so the caller can count its bytes exactly. --mlpackage
also converts it with ct.convert (an ML program for iOS 18, float32) and reports the package's
bytes on disk.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # vqexport, from this checkout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--arch", required=True, help="module:Class of the network, e.g. vqexport.zoo.cnn:MnistCNN")
    ap.add_argument("--bits", type=int, required=True)
    ap.add_argument("--granularity", choices=("per_tensor", "per_grouped_channel"), required=True)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--algorithm", choices=("post-training", "skm"), default="post-training",
                    help="skm: SKMPalettizer, k-means weighted by Fisher information from --calib images")
    ap.add_argument("--calib", nargs=2, metavar=("X.npy", "Y.npy"), help="normalised NCHW images and labels (skm)")
    ap.add_argument("--mlpackage", help="also convert the palettized model with ct.convert and save it here")
    ap.add_argument("--input-shape", default="1,1,28,28", help="NCHW shape to trace with (--mlpackage)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.algorithm == "skm" and not args.calib:
        raise SystemExit("--algorithm skm needs --calib X.npy Y.npy")

    import coremltools
    import torch
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer, PostTrainingPalettizerConfig

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    mod, cls = args.arch.split(":")
    if not mod.startswith("vqexport.zoo."):
        raise SystemExit(f"--arch {args.arch}: only the project's reference networks (vqexport.zoo.*)")
    model = getattr(importlib.import_module(mod), cls)()
    with np.load(args.weights) as z:
        model.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files}, strict=True)
    model.eval()

    cfg = {"n_bits": args.bits, "granularity": args.granularity}
    if args.granularity == "per_grouped_channel":
        cfg["group_size"] = args.group_size
    if args.algorithm == "skm":
        from coremltools.optimize.torch.palettization import SKMPalettizer, SKMPalettizerConfig

        x, y = (torch.from_numpy(np.load(f)) for f in args.calib)
        data = [(x[i:i + 1], y[i:i + 1]) for i in range(len(x))]  # one image per element, as SKM counts samples

        def loss_fn(m, batch):
            return torch.nn.functional.cross_entropy(m(batch[0]), batch[1])

        config = SKMPalettizerConfig.from_dict({"global_config": cfg, "calibration_nsamples": len(data)})
        t0 = time.perf_counter()
        out = SKMPalettizer(model, config).compress(dataloader=data, loss_fn=loss_fn)
        seconds = time.perf_counter() - t0
        algo = "SKMPalettizer"
    else:
        config = PostTrainingPalettizerConfig.from_dict({"global_config": cfg})
        t0 = time.perf_counter()
        out = PostTrainingPalettizer(model, config).compress()
        seconds = time.perf_counter() - t0
        algo = "PostTrainingPalettizer"
    out.eval()

    # coremltools keeps each LUT as a buffer "<module>._COREML_/<param>/lut": [groups.., 2^n_bits, cluster_dim].
    luts = {k.replace("._COREML_/", ".").removesuffix("/lut"): list(v.shape) for k, v in out.state_dict().items()
            if "._COREML_/" in k and k.endswith("/lut")}
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in out.state_dict().items()
             if v.is_floating_point() and "._COREML_/" not in k}
    before = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    group = args.group_size if args.granularity == "per_grouped_channel" else None
    palettized, untouched = {}, []
    for name, t in state.items():
        if not name.endswith(".weight") or t.ndim < 2:
            continue
        if np.array_equal(t, before[name]):
            untouched.append(name)
            continue
        rows = t.reshape(t.shape[0], -1)
        g = group or t.shape[0]
        most = max(np.unique(rows[a:a + g]).size for a in range(0, t.shape[0], g))
        if most > 2 ** args.bits:
            raise SystemExit(f"{name}: changed by the palettizer but holds {most} distinct values in a group "
                             f"of {g} rows, more than 2^{args.bits}")
        if name not in luts:
            raise SystemExit(f"{name}: changed by the palettizer, but it left no LUT for it")
        palettized[name] = {"n_bits": args.bits, "group_size": group, "shape": list(t.shape), "most_values": int(most),
                            "lut_shape": luts[name]}
    info = {"library": "coremltools", "version": coremltools.__version__, "torch": torch.__version__,
            "algorithm": algo,
            "settings": f"{algo}(n_bits={args.bits}, granularity={args.granularity}"
                        + (f", group_size={args.group_size})" if group else ")")
            + (f", {len(args.calib and np.load(args.calib[1]))} calibration images" if args.algorithm == "skm" else "")
            + ", defaults otherwise",
            "seconds": seconds, "palettized": palettized, "left_float": untouched}
    if args.mlpackage:
        info.update(_mlpackage(out, args.mlpackage, tuple(int(v) for v in args.input_shape.split(","))))
    np.savez(args.out, info=json.dumps(info), **state)


def _mlpackage(model, path: str, shape: tuple) -> dict:
    """The palettized model as Core ML writes it: an ML program (iOS 18, float32 compute precision,
    so the LUTs and the raw tensors stay float32 like every other file in the comparison)."""
    import os

    import coremltools as ct
    import torch

    t0 = time.perf_counter()
    traced = torch.jit.trace(model, torch.zeros(shape))
    ml = ct.convert(traced, inputs=[ct.TensorType(shape=shape)], minimum_deployment_target=ct.target.iOS18,
                    compute_precision=ct.precision.FLOAT32)
    ml.save(path)
    seconds = time.perf_counter() - t0
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
    ops = [op.op_type for f in ml._mil_program.functions.values() for op in f.operations]
    return {"mlpackage_bytes": size, "convert_s": seconds, "lut_ops": ops.count("constexpr_lut_to_dense")}


if __name__ == "__main__":
    main()
