"""Export every torchvision classification model with a Linear layer to ONNX, compressed.

For each architecture (random seeded weights, weights=None, nothing downloaded): compress
the dense layers with kmeans k=16, write the dense and the compressed .onnx, check the
compressed file against the size bound (1.01 x ideal bytes + 16 KiB) and ONNX Runtime's
logits against torch's with the decoded weights. Every architecture is a row of the table;
one that fails says why. Each architecture runs in its own process (memory, crashes).

    python tools/zoo_onnx.py --quick --out docs/results/zoo_onnx.md
    python tools/zoo_onnx.py --arch resnet18,vgg16
    python tools/zoo_onnx.py --bench reference,resnet18,vgg16 --out docs/results/bench.md
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vqexport import to_torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REQUIRED = ["alexnet", "vgg11", "vgg16", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
            "efficientnet_b0", "densenet121", "convnext_tiny", "regnet_y_400mf", "vit_b_16"]
SIZE_SLACK = 16 * 1024
INPUTS = 2  # random inputs compared per model
MIB = 2**20


def all_archs() -> list[str]:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return REQUIRED + sorted(n for n in names if n not in REQUIRED)


def build(name: str):
    """torchvision model, random weights from seed 0; Linear weights left all-zero get small noise."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear) and not mod.weight.any():
                mod.weight.normal_(0, 0.01)  # e.g. ViT's head starts at zero: logits would all be equal
    return model


def one(name: str, method: str, outdir: Path, keep: bool) -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    import vqexport
    from vqexport.formats.onnx import export_dense_onnx, export_onnx
    from vqexport.load import IMAGENET_INPUT, LoadedModel

    row = {"arch": name}
    t0 = time.time()
    model = build(name)
    lm = LoadedModel(model, "module", name, arch=f"torchvision:{name}", input=dict(IMAGENET_INPUT))
    params = sum(p.numel() for p in model.parameters())
    dense_names = lm.dense_layers()
    sd = model.state_dict()
    dense_params = sum(sd[n].numel() for n in dense_names)
    row.update(params=params, dense_pct=100.0 * dense_params / params, linear_layers=len(dense_names))
    if not dense_names:
        row["status"] = "no Linear layer (nothing to compress)"
        return row
    kw = {"kmeans": {"k": 16}, "pq": {"k": 16, "d": 4}}[method]
    cm = vqexport.compress(lm, method, seed=0, **kw)
    row["compressed_layers"] = len(cm.compressed)
    dense_path, vq_path = outdir / f"{name}.dense.onnx", outdir / f"{name}.{method}.onnx"
    dense = export_dense_onnx(lm, dense_path)
    info = export_onnx(cm, vq_path, model=lm)
    onnx.checker.check_model(str(vq_path), full_check=True)
    bound = 1.01 * info["ideal_bytes"] + SIZE_SLACK
    row.update(dense_bytes=dense["bytes"], vq_bytes=info["bytes"], ideal_bytes=info["ideal_bytes"],
               bound_ratio=info["bytes"] / bound,
               transposed=sum(v["transposed"] for v in info["layers"].values()))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    t1 = time.time()
    sess = ort.InferenceSession(str(vq_path), opts, providers=["CPUExecutionProvider"])
    row["session_s"] = time.time() - t1
    x = np.random.default_rng(0).standard_normal((INPUTS, *IMAGENET_INPUT["shape"][1:])).astype(np.float32)
    got = sess.run(None, {"input": x})[0]
    del sess
    with torch.no_grad():
        want = to_torch(cm, lm).eval()(torch.from_numpy(x)).numpy()
    scale = float(np.abs(want).max()) or 1.0
    row.update(rel_diff=float(np.abs(got - want).max()) / scale,
               top1_agree=int((got.argmax(1) == want.argmax(1)).sum()), inputs=INPUTS)
    problems = []
    if row["bound_ratio"] > 1:
        problems.append(f"file {row['bound_ratio']:.3f}x the size bound")
    if row["rel_diff"] > 1e-4:
        problems.append(f"logits differ by {row['rel_diff']:.2e} of max")
    if row["top1_agree"] != INPUTS:
        problems.append("top-1 differs")
    row["status"] = "ok" if not problems else "FAIL: " + "; ".join(problems)
    row["seconds"] = time.time() - t0
    if not keep:
        for p in (dense_path, vq_path):
            p.unlink(missing_ok=True)
            Path(str(p) + ".data").unlink(missing_ok=True)
    return row


def run_child(name: str, method: str, outdir: Path, keep: bool, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--method", method, "--workdir", str(outdir)]
    if keep:
        cmd.append("--keep")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"arch": name, "status": f"FAIL: timed out after {timeout:.0f} s"}
    last = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode == 0 and last:
        return json.loads(last[-1])
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    reason = err[-1][:200] if err else f"exit code {p.returncode}"
    if p.returncode < 0:
        reason = f"killed by signal {-p.returncode} (out of memory?)"
    return {"arch": name, "status": f"FAIL: {reason}"}


def _mb(v):
    return f"{v / MIB:.2f}" if isinstance(v, (int, float)) else ""


def table(rows: list[dict]) -> str:
    head = ("| arch | params (M) | dense % | dense .onnx MB | compressed .onnx MB | ideal MB | ratio to bound "
            "| max rel logit diff | top-1 agree | session s | status |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        row = "| {arch} | {params} | {dense} | {dmb} | {vmb} | {imb} | {ratio} | {diff} | {agree} | {sess} | {status} |"
        lines.append(row.format(
            arch=r["arch"], params=f"{r['params'] / 1e6:.1f}" if "params" in r else "",
            dense=f"{r['dense_pct']:.1f}" if "dense_pct" in r else "",
            dmb=_mb(r.get("dense_bytes")), vmb=_mb(r.get("vq_bytes")), imb=_mb(r.get("ideal_bytes")),
            ratio=f"{r['bound_ratio']:.4f}" if "bound_ratio" in r else "",
            diff=f"{r['rel_diff']:.1e}" if "rel_diff" in r else "",
            agree=f"{r['top1_agree']}/{r['inputs']}" if "top1_agree" in r else "",
            sess=f"{r['session_s']:.1f}" if "session_s" in r else "", status=r["status"]))
    return "\n".join(lines)


def write(out: Path | None, text: str) -> None:
    if out is None:
        return
    tmp = out.with_suffix(".part")
    tmp.write_text(text)
    os.replace(tmp, out)


def zoo(args) -> int:
    names = all_archs()
    if args.quick:
        names = list(REQUIRED)
    if args.arch:
        pats = args.arch.split(",")
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats)]
        names += [p for p in pats if not any(ch in p for ch in "*?[") and p not in names]  # unknown: a FAIL row
    cmd = "python tools/zoo_onnx.py " + " ".join(sys.argv[1:])
    rows = []
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zoo-onnx-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for i, name in enumerate(names):
        r = run_child(name, args.method, workdir, args.keep, args.timeout)
        rows.append(r)
        print(f"[{i + 1}/{len(names)}] {name}: {r['status']} ({r.get('seconds', 0):.0f} s)", file=sys.stderr,
              flush=True)
        done = len(rows) == len(names)
        ok = sum(r["status"] == "ok" for r in rows)
        text = (f"# ONNX export of the torchvision zoo ({args.method}{' k=16' if args.method == 'kmeans' else ''})\n\n"
                f"Command: `{cmd}`  \n"
                f"{'Finished' if done else 'In progress'}: {len(rows)}/{len(names)} architectures, {ok} ok, "
                f"{time.time() - start:.0f} s on {os.cpu_count()} CPU cores. Random seeded weights (weights=None; "
                "a Linear weight that torchvision initializes to zero gets N(0, 0.01) noise so its logits differ). "
                f"Bound = 1.01 x ideal bytes + 16 KiB. Logits: ONNX Runtime {_ort_version()} on {INPUTS} random "
                "N(0,1) inputs against torch with the decoded weights; max |diff| / max |logit|.\n\n"
                + table(rows) + "\n")
        write(args.out, text)
    print(table(rows))
    return 0 if all(r["status"].startswith(("ok", "no Linear")) for r in rows) else 1


def _ort_version():
    import onnxruntime

    return onnxruntime.__version__


def bench(args) -> int:
    """Steady-state latency of compressed vs dense .onnx (same graph but for the decode)."""
    import torch  # noqa: F401

    import vqexport
    from vqexport.evaluate.bench import run_bench
    from vqexport.formats.onnx import export_dense_onnx, export_onnx
    from vqexport.load import IMAGENET_INPUT, LoadedModel

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zoo-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = "python tools/zoo_onnx.py " + " ".join(sys.argv[1:])
    rows = []
    for name in args.bench.split(","):
        if name == "reference":  # the project's trained MNIST CNN (vqexport.zoo)
            from vqexport.zoo import reference_model

            lm = reference_model()
        else:
            lm = LoadedModel(build(name), "module", name, arch=f"torchvision:{name}", input=dict(IMAGENET_INPUT))
        cm = vqexport.compress(lm, args.method, seed=0, **({"k": 16} if args.method == "kmeans" else {"k": 16, "d": 4}))
        dense, vq = workdir / f"{name}.dense.onnx", workdir / f"{name}.{args.method}.onnx"
        export_dense_onnx(lm, dense)
        export_onnx(cm, vq, model=lm)
        del lm, cm
        probe = run_bench(dense, runs=3, warmup=1, threads=args.threads)
        runs = int(min(2000, max(args.runs, 3000 / max(probe["p50_ms"], 1e-3))))  # at least ~3 s of runs
        res = {"dense": [], "vq": []}
        for _ in range(args.rounds):  # interleaved, so load from other jobs hits both alike
            for key, path in (("dense", dense), ("vq", vq)):
                res[key].append(run_bench(path, runs=runs, warmup=args.warmup, threads=args.threads))
        best = {k: min(v, key=lambda r: r["p50_ms"]) for k, v in res.items()}
        rows.append((name, best["dense"], best["vq"]))
        print(name, {k: (v["p50_ms"], v["init_ms"], v["peak_rss_mib"]) for k, v in best.items()}, file=sys.stderr)
    head = ("| model | file MB dense / vq | session creation ms dense / vq | first run ms dense / vq "
            "| p50 ms dense / vq | p90 ms dense / vq | min ms dense / vq | **p50 ratio vq/dense** | min ratio | runs "
            "| peak RSS MiB dense / vq |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, d, v in rows:
        lines.append(f"| {name} | {d['bytes'] / MIB:.2f} / {v['bytes'] / MIB:.2f} "
                     f"| {d['init_ms']:.0f} / {v['init_ms']:.0f} "
                     f"| {d['first_run_ms']:.2f} / {v['first_run_ms']:.2f} | {d['p50_ms']:.3f} / {v['p50_ms']:.3f} "
                     f"| {d['p90_ms']:.3f} / {v['p90_ms']:.3f} | {d['min_ms']:.3f} / {v['min_ms']:.3f} "
                     f"| **{v['p50_ms'] / d['p50_ms']:.3f}** | {v['min_ms'] / d['min_ms']:.3f} | {v['runs']} "
                     f"| {d['peak_rss_mib']:.0f} / {v['peak_rss_mib']:.0f} |")
    text = (f"# ONNX Runtime latency: compressed ({args.method}) vs dense .onnx\n\nCommand: `{cmd}`  \n"
            f"vqexport.evaluate.bench.run_bench: batch 1, one seeded random input, {args.warmup} warm-up then "
            f"N timed runs (at least {args.runs} and ~3 s worth), each file in a fresh process, "
            f"threads={args.threads or 'default'}; "
            f"{args.rounds} interleaved rounds, the round with the lowest p50 kept. ONNX Runtime {_ort_version()}, "
            f"{os.cpu_count()} CPU cores shared with other jobs. Peak RSS includes the Python interpreter and "
            "the runtime (baseline about the same for both).\n\n" + "\n".join(lines) + "\n")
    write(args.out, text)
    print(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", help="comma list of names or globs (default: every classification model)")
    p.add_argument("--quick", action="store_true", help="only the 12 required architectures")
    p.add_argument("--method", default="kmeans", choices=["kmeans", "pq"])
    p.add_argument("--out", type=Path, help="write the markdown table here (rewritten after each row)")
    p.add_argument("--workdir", help="where the .onnx files go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the .onnx files")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per architecture")
    p.add_argument("--bench", help="comma list of architectures ('reference': the MNIST CNN): "
                                   "time dense vs compressed .onnx instead")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        row = one(args.child, args.method, Path(args.workdir), args.keep)
        print(json.dumps(row))
        return 0
    if args.bench:
        return bench(args)
    return zoo(args)


if __name__ == "__main__":
    sys.exit(main())
