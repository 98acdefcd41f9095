"""Beyond the paper on the Fashion-MNIST reference networks: plain, calibrated (--calib), fine-tuned
(finetune) and entropy-coded (--index-coding auto) against size, beside the anchors.

    .venv/bin/python tools/frontier.py [--network paper|mobile] [--configs NAME,...] [--epochs 2]
                                       [--calib-images 512] [--out docs/results] [--json]

Each config compresses the whole network (convolutions and dense layers of at least 2,048
weights) post-training (plain), then with calibration on --calib-images training images
(calibrated), then fine-tunes the calibrated model for --epochs on the training split
(fine-tuned; 5,000 training images held out). Every model is written as a .vqm, read back and
evaluated on the 10,000 test images, beside the uncompressed model in the same process:
top-1, agreement of its top-1 with the dense model's, and a McNemar test against the plain fit
of the same config. Sizes are the .vqm on disk, with packed indices and with Huffman-coded ones
(the same weights, so the same top-1). The anchors' points come from
docs/results/anchors_fashion.json (tools/anchors_testbed.py), measured on the same network and
test images. Deep Compression's LeNet rate (39x, from its paper) is drawn as a line, not measured.
Writes <out>/frontier_<network>.md, .json and .png.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# name -> (method, settings); whole model, default threshold
CONFIGS = {
    "kmeans-k16": ("kmeans", {"k": 16}),
    "kmeans-k4": ("kmeans", {"k": 4}),
    "kmeans-k2": ("kmeans", {"k": 2}),
    "binary": ("binary", {}),
    "pq-d4-k16": ("pq", {"d": 4, "k": 16}),
    "pq-d8-k16": ("pq", {"d": 8, "k": 16}),
    "pq-d4-k4": ("pq", {"d": 4, "k": 4}),
    "pq-d2-k16": ("pq", {"d": 2, "k": 16}),
    "vq-d4-k256": ("vq", {"d": 4, "k": 256}),
    "vq-d8-k256": ("vq", {"d": 8, "k": 256}),
    "vq-d16-k256": ("vq", {"d": 16, "k": 256}),
    "vq-d16-k128": ("vq", {"d": 16, "k": 128}),
    "vq-d16-k64": ("vq", {"d": 16, "k": 64}),
}
MOBILE_CONFIGS = {
    "kmeans-k16": ("kmeans", {"k": 16}),
    "kmeans-k16-g8": ("kmeans", {"k": 16, "group_size": 8}),
    "kmeans-k8-g8": ("kmeans", {"k": 8, "group_size": 8}),
    # every weight, the depthwise and first convs included (coremltools' threshold off)
    "kmeans-k16-all": ("kmeans", {"k": 16, "min_size": 0}),
    "kmeans-k16-g8-all": ("kmeans", {"k": 16, "group_size": 8, "min_size": 0}),
}
DEEP_COMPRESSION_LENET = 39.0  # Han et al. 2016, Table 1: LeNet-300-100 40x, LeNet-5 39x


def _file_sizes(cm, workdir: Path, tag: str) -> tuple[int, int]:
    """(.vqm bytes with packed indices, with Huffman-coded ones where smaller)."""
    import vqexport

    sizes = []
    for coding in ("packed", "auto"):
        path = workdir / f"{tag}-{coding}.vqm"
        vqexport.write_vqm(cm, path, index_coding=coding)
        sizes.append(path.stat().st_size)
        path.unlink()
    return sizes[0], sizes[1]


def run(network: str, configs: list[str], epochs: int, calib_images: int, seed: int, log) -> dict:
    import numpy as np

    import vqexport
    from vqexport.calibrate import calibration
    from vqexport.evaluate.accuracy import predict
    from vqexport.evaluate.datasets import fashion
    from vqexport.evaluate.paired import compare
    from vqexport.evaluate.runtimes import TorchRuntime
    from vqexport.finetune import FinetuneConfig, finetune, training_set
    from vqexport.zoo.reference import reference_path

    table = MOBILE_CONFIGS if network == "mobile" else CONFIGS
    model = vqexport.load_model(reference_path("fashion", network=network))
    x, y = fashion("test")

    def answers(module) -> np.ndarray:
        return predict(TorchRuntime(module, model.input), x).argmax(1)

    dense = answers(model.module)
    dense_bytes = sum(int(v.numel()) * v.element_size() for v in model.state_dict().values())
    out = {"network": network, "model": model.name, "seed": seed, "epochs": epochs, "calib_images": calib_images,
           "dense_top1": float(np.mean(dense == y)), "dense_bytes": dense_bytes, "rows": []}
    log(f"{network}: dense top-1 {100 * out['dense_top1']:.2f} %, {dense_bytes:,} bytes")
    t0 = time.perf_counter()
    calib = calibration(model, "fashion", calib_images, seed)
    x_train, y_train = training_set("fashion", model.input, model.name)
    out["calib_load_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="frontier-") as tmp:
        workdir = Path(tmp)
        for name in configs:
            method, settings = table[name]
            variants = {}
            for variant in ("plain", "calibrated", "fine-tuned"):
                t0 = time.perf_counter()
                if variant == "plain":
                    cm = vqexport.compress(model, method, seed=seed, **settings)
                elif variant == "calibrated":
                    cm = vqexport.compress(model, method, seed=seed, calib=calib, **settings)
                else:
                    if not epochs:
                        continue
                    start = variants["calibrated"]["cm"]
                    cm, report = finetune(start, vqexport.to_torch(start, model), x_train, y_train,
                                          FinetuneConfig(epochs=epochs, seed=seed))
                seconds = time.perf_counter() - t0
                pred = answers(vqexport.to_torch(cm, model))
                packed, coded = _file_sizes(cm, workdir, f"{name}-{variant}")
                row = {"config": name, "variant": variant, "method": method, "settings": settings,
                       "top1": float(np.mean(pred == y)), "agreement": float(np.mean(pred == dense)),
                       "vqm_bytes": packed, "vqm_coded_bytes": coded, "ratio": dense_bytes / packed,
                       "ratio_coded": dense_bytes / coded, "seconds": seconds,
                       "bits_per_weight": _bits(cm)}
                if variant == "fine-tuned":
                    row["train_loss"] = [e["train_loss"] for e in report["epochs_run"]]
                if variant != "plain":
                    p = compare(pred == y, variants["plain"]["pred"] == y, seed=seed)
                    row["vs_plain"] = {"delta_points": 100 * (p.top1_a - p.top1_b), "p": p.p_value,
                                       "ci_points": [100 * p.ci_low, 100 * p.ci_high]}
                variants[variant] = {"cm": cm, "pred": pred}
                out["rows"].append(row)
                log(f"  {name:12s} {variant:10s} top-1 {100 * row['top1']:.2f} % agree {100 * row['agreement']:.2f} % "
                    f"{row['ratio']:.1f}x ({row['ratio_coded']:.1f}x coded) {seconds:.1f} s")
    return out


def _bits(cm) -> float:
    """Stored bits per weight over the compressed tensors (codebooks included)."""
    comp = cm.compressed
    return sum(t.ideal_bits for t in comp) / max(1, sum(t.numel for t in comp))


def anchors() -> list[dict]:
    path = ROOT / "docs" / "results" / "anchors_fashion.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return data.get("rows", [])


def render(res: dict, command: str) -> str:
    dense = res["dense_top1"]
    lines = [f"# Beyond the paper: {res['network']} network, Fashion-MNIST", "",
             f"Command: `{command}`", "",
             f"Model `{res['model']}`: dense top-1 {100 * dense:.2f} % on the 10,000 test images, "
             f"{res['dense_bytes']:,} bytes of float32 tensors. Whole model compressed (every conv and dense "
             "weight of at least 2,048 elements; every weight in the configs named -all). "
             f"Calibration: {res['calib_images']} training images. "
             f"Fine-tuning: {res['epochs']} epochs of the calibrated model on the training split "
             "(5,000 held out), Adam lr 1e-4, batch 128; codebooks and raw tensors trained, indices fixed. "
             f"Code: commit {res.get('commit', '?')}. "
             "Agreement: share of test images whose top-1 equals the dense model's. vs plain: McNemar's exact "
             "test of this row against the plain fit of the same config, Δ in points.", "",
             "| config | variant | bits/weight | .vqm | ratio | Huffman-coded .vqm | ratio | top-1 | Δ vs dense "
             "| agreement | vs plain | time |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in res["rows"]:
        vs = r.get("vs_plain")
        vs_text = "" if not vs else f"{vs['delta_points']:+.2f} (p={vs['p']:.2g})"
        lines.append(f"| {r['config']} | {r['variant']} | {r['bits_per_weight']:.3f} | {r['vqm_bytes']:,} | "
                     f"{r['ratio']:.1f}x | {r['vqm_coded_bytes']:,} | {r['ratio_coded']:.1f}x | "
                     f"{100 * r['top1']:.2f} % | {100 * (r['top1'] - dense):+.2f} | {100 * r['agreement']:.2f} % | "
                     f"{vs_text} | {r['seconds']:.1f} s |")
    if res["network"] == "paper" and anchors():
        lines += ["", "The anchors, from docs/results/anchors_fashion.md (tools/anchors_testbed.py, same network and "
                  "test images; sizes as that page matches them: tfmot's gzipped .tflite, coremltools' exact "
                  "accounting):", "", "| anchor | setting | size | ratio | top-1 |", "|---|---|---:|---:|---:|"]
        for a in anchors():
            lines.append(f"| {a['anchor']} | {a['settings']} | {a['matched_bytes']:,} | "
                         f"{res['dense_bytes'] / a['matched_bytes']:.1f}x | {100 * a['top1']:.2f} % |")
        lines.append(f"| Deep Compression (paper, LeNet, not measured) | pruning + k-means + Huffman | - | "
                     f"{DEEP_COMPRESSION_LENET:.0f}x | - |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"plain": ("o", "tab:gray"), "calibrated": ("s", "tab:blue"), "fine-tuned": ("^", "tab:green")}
    for variant, (marker, color) in styles.items():
        rows = sorted((r for r in res["rows"] if r["variant"] == variant), key=lambda r: r["ratio"])
        if rows:
            ax.plot([r["ratio"] for r in rows], [100 * r["top1"] for r in rows], marker, color=color, label=variant)
    coded = sorted((r for r in res["rows"] if r["variant"] == "fine-tuned"), key=lambda r: r["ratio_coded"])
    if coded:
        ax.plot([r["ratio_coded"] for r in coded], [100 * r["top1"] for r in coded], "v", color="tab:olive",
                label="fine-tuned, Huffman-coded indices")
    if res["network"] == "paper":
        for a in anchors():
            tuned = a.get("epochs", 0) > 0
            ax.plot(res["dense_bytes"] / a["matched_bytes"], 100 * a["top1"], "P" if tuned else "x",
                    color="tab:red")
        ax.plot([], [], "x", color="tab:red", label="anchors, post-training (coremltools, tfmot)")
        ax.plot([], [], "P", color="tab:red", label="tfmot clustering, fine-tuned 1 epoch")
        ax.axvline(DEEP_COMPRESSION_LENET, color="tab:red", ls=":", label="Deep Compression, LeNet (paper): 39x")
    ax.axhline(100 * res["dense_top1"], color="black", ls="--", lw=0.8, label="dense")
    ax.axhline(100 * res["dense_top1"] - 1, color="black", ls=":", lw=0.8, label="dense - 1 point")
    ax.set_xscale("log")
    ax.set_xlabel("whole-model compression (dense float32 bytes / .vqm bytes)")
    ax.set_ylabel("top-1 on the 10,000 test images (%)")
    ax.set_ylim(max(0, 100 * res["dense_top1"] - 12), 100 * res["dense_top1"] + 1)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"Fashion-MNIST, {res['network']} network (points below the axis: see the table)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", choices=["paper", "mobile"], default="paper")
    ap.add_argument("--configs", help="comma list (default: all of the network's)")
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs; 0 skips fine-tuning (default 2)")
    ap.add_argument("--calib-images", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="folder for frontier_<network>.md/.json/.png")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--render", metavar="JSON", help="only re-write the .md and .png of a saved run into --out")
    args = ap.parse_args(argv)
    if args.render:
        res = json.loads(Path(args.render).read_text())
        out = Path(args.out or Path(args.render).parent)
        (out / f"frontier_{res['network']}.md").write_text(render(res, res["command"]))
        plot(res, out / f"frontier_{res['network']}.png")
        return 0
    table = MOBILE_CONFIGS if args.network == "mobile" else CONFIGS
    configs = args.configs.split(",") if args.configs else list(table)
    bad = [c for c in configs if c not in table]
    if bad:
        ap.error(f"unknown config {bad[0]}; choose from {', '.join(table)}")
    res = run(args.network, configs, args.epochs, args.calib_images, args.seed,
              lambda m: print(m, file=sys.stderr, flush=True))
    command = "python tools/frontier.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res["command"] = command
    res["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                   text=True).stdout.strip()
    text = render(res, command)
    if args.out:
        out = Path(args.out)
        (out / f"frontier_{args.network}.md").write_text(text)
        (out / f"frontier_{args.network}.json").write_text(json.dumps(res, indent=1))
        plot(res, out / f"frontier_{args.network}.png")
    print(json.dumps(res, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
