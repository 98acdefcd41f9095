"""Whole-model kmeans k=16 on nine torchvision CNNs: file ratios, agreement, latency, coremltools beside it.

    python tools/zoo_whole.py --out docs/results/zoo_whole.md --json docs/results/zoo_whole.json
    python tools/zoo_whole.py --models resnet18,mobilenet_v2 --group-size 16 --no-anchor
    python tools/zoo_whole.py --models resnet18 --weights-only --out /tmp/w.md   # the coremltools table only

Per model (random seeded weights, weights=None, input 1x3x224x224), in its own process:

- every weight of >= 2048 elements compressed with kmeans k=16 (BatchNorm folded first); the
  .onnx against export_dense_onnx and the decode="load" .tflite against export_dense_tflite,
  whole files on disk;
- logits of ONNX Runtime and LiteRT (num_threads=2, NHWC input) against to_torch(cm) on
  --inputs random N(0,1) inputs: max |diff| / max |logit| and top-1;
- LiteRT p50 latency, dense and load .tflite in one process, interleaved rounds, num_threads=2;
- the weights: mean over compressed tensors of mean((W - W_hat)^2) and of ||W - W_hat|| / ||W||,
  per tensor and with one codebook per --group-size output channels, beside coremltools'
  PostTrainingPalettizer (n_bits=4) at the same granularity on the same tensors (the BatchNorm-
  folded weights that vqexport quantizes), run in --anchor-python (a venv with coremltools;
  no torchvision there, so it gets a module tree of Conv2d/Linear shells under the same names,
  which is all its data-free k-means reads). Time: vqexport.compress() and its compress().

A step that fails is recorded in the model's row (the error, one line) and the rest goes on.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18", "resnet50", "densenet121",
          "regnet_y_400mf", "vgg16", "convnext_tiny"]
K, BITS, MIN_SIZE = 16, 4, 2048
MIB = 2**20


# --------------------------------------------------------------------------- one model (child process)

def _err(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def weight_errors(ref: dict, decoded: dict) -> dict:
    """{name: [mean((W - W_hat)^2), ||W - W_hat|| / ||W||]} over the names in `decoded`."""
    out = {}
    for name, w_hat in decoded.items():
        w = ref[name].astype(np.float64)
        d = float(np.sum((w - np.asarray(w_hat, dtype=np.float64).reshape(w.shape)) ** 2))
        out[name] = [d / w.size, float(np.sqrt(d / max(np.sum(w * w), 1e-300)))]
    return out


def decoded_tensors(cm) -> dict:
    from vqexport.methods import registry

    return {t.name: np.concatenate([registry.decode(t, rows) for rows in t.row_blocks()]) for t in cm.compressed}


def anchor(anchor_py: Path, ref: dict, kinds: dict, granularity: str, group: int, work: Path, seed: int) -> dict:
    """coremltools' PostTrainingPalettizer on the tensors `kinds` names: its palettized weights and seconds."""
    weights, out = work / "anchor_in.npz", work / "anchor_out.npz"
    np.savez(weights, **{n: ref[n] for n in kinds})
    spec = {"weights": str(weights), "out": str(out), "tensors": kinds, "granularity": granularity,
            "group_size": group, "seed": seed}
    (work / "anchor.json").write_text(json.dumps(spec))
    p = subprocess.run([str(anchor_py), __file__, "--coreml-child", str(work / "anchor.json")],
                       capture_output=True, text=True, timeout=3600)
    weights.unlink()
    if p.returncode:
        tail = [ln for ln in p.stderr.splitlines() if ln.strip()] or [f"exit code {p.returncode}"]
        raise RuntimeError(f"coremltools child: {tail[-1][:300]}")
    with np.load(out) as z:
        info = json.loads(str(z["info"]))
        info["weights"] = {n: z[n] for n in info["palettized"]}
    out.unlink()
    return info


def folder_bytes(path: Path) -> int:
    """The file and anything written beside it (ONNX external data) in its own folder."""
    return sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file())


def agreement(got: np.ndarray, want: np.ndarray) -> dict:
    return {"rel_diff": float(np.abs(got - want).max() / (np.abs(want).max() or 1.0)),
            "top1": int((got.argmax(1) == want.argmax(1)).sum()), "inputs": len(want)}


def litert(path: Path, threads: int = 2):
    from ai_edge_litert.interpreter import Interpreter

    from vqexport.formats.tflite.external import interpreter_source

    t0 = time.perf_counter()
    with interpreter_source(path) as source:
        it = Interpreter(**source, num_threads=threads)
        it.allocate_tensors()
    return it, time.perf_counter() - t0


def run_tflite(it, x: np.ndarray) -> np.ndarray:
    """NCHW x through an interpreter whose input the converter made channels last (NHWC)."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    nhwc = x.transpose(0, 2, 3, 1)
    if tuple(inp["shape"][1:]) != nhwc.shape[1:]:
        raise ValueError(f"the .tflite input is {list(inp['shape'])}, not NHWC {list(nhwc.shape)}")
    got = []
    for xi in nhwc:
        it.set_tensor(inp["index"], np.ascontiguousarray(xi[None]))
        it.invoke()
        got.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(got)


def latency(its: dict, budget_s: float, rounds: int = 10) -> dict:
    """p50 of each interpreter's invoke(), the same input, in interleaved rounds (order alternating)."""
    per = {}
    for key, it in its.items():
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.random.default_rng(0).standard_normal(inp["shape"]).astype(np.float32))
        for _ in range(2):
            it.invoke()
        t0 = time.perf_counter()
        it.invoke()
        per[key] = time.perf_counter() - t0
    n = int(min(50, max(3, budget_s / rounds / sum(per.values()))))
    times = {k: [] for k in its}
    keys = list(its)
    for r in range(rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            for _ in range(n):
                t0 = time.perf_counter()
                its[key].invoke()
                times[key].append(time.perf_counter() - t0)
    return {k: {"p50_ms": 1e3 * float(np.median(v)), "runs": len(v)} for k, v in times.items()}


def measure(name: str, args) -> dict:
    import warnings

    import torch
    import torchvision

    import vqexport
    from vqexport.compressor import fold_for_export
    from vqexport.load import IMAGENET_INPUT

    warnings.simplefilter("ignore")  # the fold and skip notes; the counts are in the row
    torch.set_num_threads(2)
    row, errors = {"model": name}, {}
    work = Path(args.workdir) / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.manual_seed(args.seed)
    lm = vqexport.load_model(torchvision.models.get_model(name, weights=None).eval())
    lm.input = dict(IMAGENET_INPUT)
    row["params"] = sum(p.numel() for p in lm.module.parameters())
    folded = fold_for_export(lm)[0]
    ref = {k: v.detach().float().numpy() for k, v in folded.module.state_dict().items()}
    kinds = folded.weights()
    modules = dict(folded.module.named_modules())

    gc.collect()  # each timed call starts from a collected heap (the anchor's too), as timeit's would
    t0 = time.perf_counter()
    cm = vqexport.compress(lm, "kmeans", k=K, seed=args.seed, min_size=MIN_SIZE)
    row["compress_s"] = time.perf_counter() - t0
    comp = cm.compressed
    row.update(tensors=len(comp), weights=len(kinds), ideal_bytes=cm.ideal_bits() / 8,
               compressed_pct=100.0 * sum(t.numel for t in comp) / sum(v.size for v in ref.values()))
    ours = {"per_tensor": (weight_errors(ref, decoded_tensors(cm)), row["compress_s"])}
    if args.group_size:
        gc.collect()
        t0 = time.perf_counter()
        cm_g = vqexport.compress(lm, "kmeans", k=K, seed=args.seed, min_size=MIN_SIZE, group_size=args.group_size)
        seconds = time.perf_counter() - t0  # before the errors: they decode the whole model
        ours["grouped"] = (weight_errors(ref, decoded_tensors(cm_g)), seconds)
        del cm_g
    row["weights_cmp"] = {}
    for gran, (errs, secs) in ours.items():
        entry = {"ours_s": secs, "ours_tensors": len(errs), "ours": _mean(errs)}
        anchor_py = Path(args.anchor_python)
        if args.anchor and anchor_py.exists():
            shells = {}
            for n in (t.name for t in comp):  # the tensors vqexport compresses per tensor, for both granularities
                mod = modules.get(n.removesuffix(".weight"))
                if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and n.endswith(".weight"):
                    shells[n] = {"kind": "linear" if isinstance(mod, torch.nn.Linear) else "conv2d",
                                 "groups": getattr(mod, "groups", 1)}
            try:
                info = anchor(anchor_py, ref, shells, "per_tensor" if gran == "per_tensor" else "per_grouped_channel",
                              args.group_size, work, args.seed)
                theirs = weight_errors(ref, info.pop("weights"))
                both = sorted(set(errs) & set(theirs))
                entry.update(coreml_s=info["seconds"], coreml_tensors=len(theirs), compared=len(both),
                             coreml=_mean({n: theirs[n] for n in both}), ours_same=_mean({n: errs[n] for n in both}),
                             coreml_version=info["version"], only_ours=sorted(set(errs) - set(theirs)),
                             only_coreml=sorted(set(theirs) - set(errs)))
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
                errors[f"coremltools {gran}"] = _err(e)
        row["weights_cmp"][gran] = entry
    del ref, folded
    if args.weights_only:
        shutil.rmtree(work, ignore_errors=True)
        if errors:
            row["errors"] = errors
        return row

    x = np.random.default_rng(args.seed).standard_normal((args.inputs, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = vqexport.to_torch(cm, lm).eval()(torch.from_numpy(x)).numpy()
    paths = {k: work / k / f"{name}.{k.split('_')[1]}" for k in ("dense_onnx", "vq_onnx", "dense_tflite",
                                                                    "load_tflite")}
    for p in paths.values():
        p.parent.mkdir()
    try:
        import onnxruntime as ort

        from vqexport.formats.onnx import export_dense_onnx

        export_dense_onnx(lm, paths["dense_onnx"])
        vqexport.to_onnx(cm, paths["vq_onnx"], model=lm)
        row["onnx_bytes"] = [folder_bytes(paths["dense_onnx"]), folder_bytes(paths["vq_onnx"])]
        opts = ort.SessionOptions()
        opts.log_severity_level, opts.intra_op_num_threads = 3, 2
        sess = ort.InferenceSession(str(paths["vq_onnx"]), opts, providers=["CPUExecutionProvider"])
        row["ort"] = agreement(np.concatenate([sess.run(None, {"input": xi[None]})[0] for xi in x]), want)
        del sess
    except Exception as e:  # noqa: BLE001 - any failure is recorded in the row, the next step still runs
        errors["onnx"] = _err(e)
    for k in ("dense_onnx", "vq_onnx"):
        shutil.rmtree(paths[k].parent, ignore_errors=True)
    from vqexport.formats.tflite.export import export_dense_tflite

    with torch.no_grad():
        want_dense = lm.module(torch.from_numpy(x)).numpy()
    its = {}
    for key, export, ref_logits in (("dense", lambda p: export_dense_tflite(lm, p), want_dense),
                                    ("load", lambda p: vqexport.to_tflite(cm, p, model=lm, decode="load"), want)):
        try:  # each file on its own: one that fails to convert does not hide the other
            path = paths[f"{key}_tflite"]
            t0 = time.perf_counter()
            export(path)
            row[f"{key}_tflite_s"] = time.perf_counter() - t0
            row[f"{key}_tflite_bytes"] = folder_bytes(path)
            its[key], init = litert(path)
            row[f"{key}_init_ms"] = 1e3 * init
            row[f"litert_{key}"] = agreement(run_tflite(its[key], x), ref_logits)
        except Exception as e:  # noqa: BLE001 - any failure is recorded in the row
            errors[f"{key} .tflite"] = _err(e)
    if len(its) == 2:
        row["tflite_bytes"] = [row["dense_tflite_bytes"], row["load_tflite_bytes"]]
        row["latency"] = latency(its, args.bench_s)
    shutil.rmtree(work, ignore_errors=True)
    if errors:
        row["errors"] = errors
    return row


def _mean(errs: dict) -> dict:
    v = np.array(list(errs.values())) if errs else np.zeros((0, 2))
    return {"mse": float(v[:, 0].mean()) if len(v) else None, "rel": float(v[:, 1].mean()) if len(v) else None}


# --------------------------------------------------------------------------- coremltools (in its own venv)

def coreml_child(spec_path: str) -> int:
    """Palettize the named tensors with coremltools; imports only torch, numpy and coremltools."""
    import re

    import coremltools
    import torch
    from coremltools.optimize.torch.palettization import (
        ModulePostTrainingPalettizerConfig,
        PostTrainingPalettizer,
        PostTrainingPalettizerConfig,
    )

    spec = json.loads(Path(spec_path).read_text())
    torch.manual_seed(spec["seed"])
    torch.set_num_threads(2)
    root = torch.nn.Module()
    with np.load(spec["weights"]) as z:
        before = {n: z[n] for n in spec["tensors"]}
    for name, s in spec["tensors"].items():
        *parents, leaf = name.removesuffix(".weight").split(".")
        node = root
        for part in parents:
            if part not in node._modules:
                node.add_module(part, torch.nn.Module())
            node = node._modules[part]
        w = before[name]
        if s["kind"] == "linear":
            mod = torch.nn.utils.skip_init(torch.nn.Linear, w.shape[1], w.shape[0], bias=False)
        else:
            mod = torch.nn.utils.skip_init(torch.nn.Conv2d, w.shape[1] * s["groups"], w.shape[0], tuple(w.shape[2:]),
                                           groups=s["groups"], bias=False)
        mod.weight.data = torch.from_numpy(w.copy())
        node.add_module(leaf, mod)
    opts = {"n_bits": BITS, "granularity": spec["granularity"]}
    if spec["granularity"] == "per_grouped_channel":
        opts["group_size"] = spec["group_size"]
    # one entry per module so that nothing else is palettized (no size threshold of its own)
    config = PostTrainingPalettizerConfig(module_name_configs={
        re.escape(n.removesuffix(".weight")): ModulePostTrainingPalettizerConfig(**opts) for n in spec["tensors"]})
    gc.collect()
    t0 = time.perf_counter()
    out = PostTrainingPalettizer(root, config).compress(inplace=True)
    seconds = time.perf_counter() - t0
    mods = dict(out.named_modules())
    after = {n: mods[n.removesuffix(".weight")].weight.detach().numpy() for n in spec["tensors"]}
    palettized = [n for n in after if not np.array_equal(after[n], before[n])]
    info = {"version": coremltools.__version__, "seconds": seconds, "palettized": palettized}
    np.savez(spec["out"], info=json.dumps(info), **{n: after[n] for n in palettized})
    return 0


# --------------------------------------------------------------------------- the table (parent)

def run_child(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--workdir", args.workdir, "--seed", str(args.seed),
           "--group-size", str(args.group_size), "--inputs", str(args.inputs), "--bench-s", str(args.bench_s),
           "--anchor-python", args.anchor_python] + ([] if args.anchor else ["--no-anchor"]) + \
        (["--weights-only"] if args.weights_only else [])
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "errors": {"run": f"timed out after {args.timeout:.0f} s"}}
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode == 0 and rows:
        row = json.loads(rows[-1])
    else:
        tail = [ln for ln in p.stderr.splitlines() if ln.strip()] or [f"exit code {p.returncode}"]
        why = f"killed by signal {-p.returncode} (out of memory?)" if p.returncode < 0 else tail[-1][:300]
        row = {"model": name, "errors": {"run": why}}
    row["seconds"] = time.time() - t0
    return row


def _f(v, fmt: str, none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _ratio(pair) -> str:
    if not pair or None in pair:
        return " / ".join(_f(v and v / MIB, ".2f") for v in pair or [None, None]) + " | -"
    return f"{pair[0] / MIB:.2f} / {pair[1] / MIB:.2f} | **{pair[0] / pair[1]:.2f}x**"


def _agree(a) -> str:
    return f"{a['rel_diff']:.1e}, {a['top1']}/{a['inputs']}" if a else "-"


def render(rows: list[dict], args, command: str, elapsed: float) -> str:
    g = args.group_size
    out = [f"# Whole-model kmeans k={K} on torchvision CNNs", "", f"Command: `{command}`", "",
           f"{len(rows)} models, {elapsed / 60:.0f} min. Random seeded weights (weights=None, seed {args.seed}), "
           f"input 1x3x224x224, every weight of >= {MIN_SIZE} elements compressed (BatchNorm folded first). "
           "The machine: 2 CPU cores shared with other jobs, so times are noisy.", "",
           "## Files, agreement, latency", "",
           "Sizes: whole files on disk, dense export against compressed (.onnx: Gather decode; .tflite: "
           "decode=\"load\"); ideal: the compressed model's own bytes (codebooks, packed indices, raw tensors). "
           "Agreement: max |diff| / max |logit|, and how many of "
           f"{args.inputs} random N(0,1) inputs keep their top-1; ORT vq and LiteRT load against to_torch(cm) "
           "(the decoded weights in torch), LiteRT dense against the torch model. Latency: LiteRT, "
           "num_threads=2, dense and load .tflite in one process, 10 interleaved rounds (order alternating), "
           "p50 over all runs.", "",
           "| model | params M | compressed tensors / weights (% of elements) | ideal MB | .onnx MB dense / vq "
           "| .onnx ratio | .tflite MB dense / load | .tflite ratio | ORT vq | LiteRT dense | LiteRT load "
           "| p50 ms dense / load | **p50 load/dense** | compress s | errors |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lat = r.get("latency")
        lat_s = (f"{lat['dense']['p50_ms']:.1f} / {lat['load']['p50_ms']:.1f} | "
                 f"**{lat['load']['p50_ms'] / lat['dense']['p50_ms']:.3f}**") if lat else "- | -"
        comp = (f"{r['tensors']} / {r['weights']} ({r['compressed_pct']:.1f} %)" if "tensors" in r else "-")
        tfl = r.get("tflite_bytes") or [r.get("dense_tflite_bytes"), r.get("load_tflite_bytes")]
        errs = "; ".join(f"{k}: {v}" for k, v in r.get("errors", {}).items()) or ""
        out.append(f"| {r['model']} | {_f(r.get('params') and r['params'] / 1e6, '.1f')} | {comp} "
                   f"| {_f(r.get('ideal_bytes') and r['ideal_bytes'] / MIB, '.2f')} "
                   f"| {_ratio(r.get('onnx_bytes'))} | {_ratio(tfl)} | {_agree(r.get('ort'))} "
                   f"| {_agree(r.get('litert_dense'))} | {_agree(r.get('litert_load'))} | {lat_s} "
                   f"| {_f(r.get('compress_s'), '.1f')} | {errs} |")
    out += ["", f"## Weights: vqexport kmeans k={K} against coremltools PostTrainingPalettizer n_bits={BITS}", "",
            "MSE: mean over tensors of mean((W - W_hat)^2); rel: mean of ||W - W_hat|| / ||W||; over the tensors "
            "both compressed (W: the BatchNorm-folded weight vqexport quantizes; coremltools gets the same "
            f"tensors). grouped: one codebook / LUT per {g} output channels (--group-size {g}; "
            "per_grouped_channel, group_size=" f"{g}); a weight whose output channels {g} does not divide stays "
            "float in both. Time: vqexport.compress() on the whole model, coremltools' compress() on "
            "those tensors, each from a collected heap (gc.collect() first). Ours includes the BatchNorm fold.", "",
            "| model | granularity | tensors compared | MSE ours | MSE coremltools | rel ours | rel coremltools "
            "| time ours s | time coremltools s | ours <= theirs (MSE, time) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        for gran, e in r.get("weights_cmp", {}).items():
            label = "per tensor" if gran == "per_tensor" else f"group {g}"
            if "coreml" not in e:
                out.append(f"| {r['model']} | {label} | {e['ours_tensors']} | {_f(e['ours']['mse'], '.3e')} | - "
                           f"| {_f(e['ours']['rel'], '.4f')} | - | {e['ours_s']:.1f} | - | anchor not run |")
                continue
            o, t = e["ours_same"], e["coreml"]
            ok = f"{'yes' if o['mse'] <= t['mse'] else 'NO'}, {'yes' if e['ours_s'] <= e['coreml_s'] else 'NO'}"
            extra = "".join(f" ({len(e[k])} {k.replace('_', ' ')})" for k in ("only_ours", "only_coreml") if e[k])
            out.append(f"| {r['model']} | {label} | {e['compared']}{extra} | {o['mse']:.3e} | {t['mse']:.3e} "
                       f"| {o['rel']:.4f} | {t['rel']:.4f} | {e['ours_s']:.1f} | {e['coreml_s']:.1f} | {ok} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma list of torchvision names (default: the nine)")
    p.add_argument("--out", type=Path, help="write the markdown here (rewritten after each model)")
    p.add_argument("--json", type=Path, help="write the rows as JSON here (rewritten after each model)")
    p.add_argument("--resume", action="store_true", help="keep the models already in --json, run the rest")
    p.add_argument("--group-size", type=int, default=16, help="output channels per codebook for the grouped "
                   "comparison (0: none)")
    p.add_argument("--no-anchor", dest="anchor", action="store_false", help="skip coremltools")
    p.add_argument("--anchor-python", default=str(ROOT / ".venv-anchors" / "bin" / "python"),
                   help="python of a venv with coremltools (default: .venv-anchors)")
    p.add_argument("--weights-only", action="store_true", help="only the weight errors and compress times (against "
                   "coremltools): no .onnx/.tflite export, agreement or latency")
    p.add_argument("--inputs", type=int, default=3, help="random inputs for the logit agreement")
    p.add_argument("--bench-s", type=float, default=12.0, help="about how long to time each pair of .tflite")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per model")
    p.add_argument("--workdir", help="scratch folder (default: a temporary one)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--coreml-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.coreml_child:
        return coreml_child(args.coreml_child)
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return 0
    names = [n for n in args.models.split(",") if n]
    rows = json.loads(args.json.read_text()) if args.resume and args.json and args.json.exists() else []
    rows = [r for r in rows if r["model"] in names]
    done = {r["model"] for r in rows}
    command = "python tools/zoo_whole.py " + " ".join(sys.argv[1:] if argv is None else argv)
    tmp = None
    if not args.workdir:
        args.workdir = tmp = tempfile.mkdtemp(prefix="zoo-whole-")
    start = time.time()
    try:
        for name in names:
            if name in done:
                continue
            print(f"[zoo_whole {time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
            rows.append(run_child(name, args))
            rows.sort(key=lambda r: names.index(r["model"]))
            if args.json:
                _write(args.json, json.dumps(rows, indent=1) + "\n")
            if args.out:
                _write(args.out, render(rows, args, command, time.time() - start))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(render(rows, args, command, time.time() - start))
    return 0 if not any(r.get("errors") for r in rows) else 1


def _write(path: Path, text: str) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


if __name__ == "__main__":
    sys.exit(main())
