"""The paper's experiment on the reference CNN: every method's accuracy against compression.

    .venv/bin/python tools/paper_experiment.py [--data mnist5k,digits,fashion] [--formats vqm,onnx,tflite] [--quick]

Runs `vqexport sweep` on the reference CNN (trained on each data set, cached in ~/.cache/vqexport)
and writes docs/results/paper_experiment.md with the tables, the plots, the best compression
within 1 point of top-1 for each method, and whether VQ beats SVD at equal compression.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion,mnist5k,digits")
    ap.add_argument("--budget-rates", default="8,16,30,40,50,64",
                    help="whole-model rates at which the budget search adds a point (fashion only; '' for none)")
    ap.add_argument("--formats", default="vqm,onnx,tflite")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--from-results", action="store_true",
                    help="rebuild the markdown from the results.json of an earlier run, without sweeping")
    args = ap.parse_args()

    from vqexport.evaluate.sweep import plot_accuracy, plot_sizes, run_sweep
    from vqexport.zoo.reference import reference_path

    out = Path(args.out)
    sections, summaries = [], []
    for data in args.data.split(","):
        start = time.perf_counter()
        folder = out / f"paper_{data}"
        if args.from_results:
            s = json.loads((folder / "results.json").read_text())
            s["correct"] = _load_correct(folder)
            plot_accuracy(s, folder / "accuracy_vs_compression.png")
            plot_sizes(s, folder / "size_vs_accuracy.png")
            minutes = s.get("minutes")
        else:
            model = reference_path(data, quiet=False)
            rates = [float(r) for r in args.budget_rates.split(",") if r] if data == "fashion" else None
            s = run_sweep(model, data, folder, quick=args.quick, formats=args.formats.split(","), budget_rates=rates)
            _save_correct(folder, s["correct"])
            minutes = (time.perf_counter() - start) / 60
            s["minutes"] = minutes
            (folder / "results.json").write_text(json.dumps({k: v for k, v in s.items()
                                                             if k not in ("outputs", "correct")},
                                                            indent=2, sort_keys=True, default=float))
        sections.append(section(s, data, folder, out, minutes))
        summaries.append((data, s))
        print(f"{data}: done", file=sys.stderr)
    cmd = "python tools/paper_experiment.py" + ("" if args.from_results else " " + " ".join(sys.argv[1:]))
    text = HEADER.format(cmd=cmd.strip()) + "\n".join(sections) + against_paper(summaries)
    (out / "paper_experiment.md").write_text(text)
    print(f"wrote {out / 'paper_experiment.md'}")
    return 0


HEADER = """# The paper's experiment on our reference CNN

Made by `{cmd}` (the full sweep; `make test` runs a three-point version).
The network is shaped like the paper's: two small conv layers, then dense 3136-1024-1024-10
(99.6 % of its 4.3 M parameters), trained on each data set (Fashion-MNIST: 3 epochs on the
official 60,000 training images, 91.49 % top-1). Accuracy is measured on held-out images: the
official 10,000 Fashion-MNIST test images, 1,000 for mnist5k (about +-0.5 points of noise on
top-1) and 360 for digits (about +-1.5 points); `agree` (share of top-1 predictions equal to the
uncompressed model's) and the logit SNR are paired measures on the same images and resolve far
smaller differences, and on Fashion-MNIST each of the paper's findings is decided by McNemar
tests on the same 10,000 images. The `budget` points (Fashion-MNIST only) are the size budget
of `vqexport compress --target-size` at whole-model rates of 8x to 64x. Compression is counted
as the paper counts it: 32-bit dense bits over the bits stored (indices, codebooks, scales);
"whole model" includes the raw conv layers and biases.

"""


def _save_correct(folder: Path, correct: dict) -> None:
    """Which test images each point got right: the input of the paired tests, kept beside results.json."""
    import numpy as np

    labels = list(correct)
    bits = np.packbits(np.stack([correct[k] for k in labels]), axis=1)
    np.savez_compressed(folder / "correct.npz", labels=np.array(json.dumps(labels)), bits=bits,
                        n=np.array(len(correct[labels[0]])))


def _load_correct(folder: Path) -> dict:
    import numpy as np

    path = folder / "correct.npz"
    if not path.exists():
        return {}
    with np.load(path) as z:
        labels, n = json.loads(str(z["labels"])), int(z["n"])
        rows = np.unpackbits(z["bits"], axis=1)[:, :n].astype(bool)
    return dict(zip(labels, rows, strict=True))


def section(s: dict, data: str, folder: Path, out: Path, minutes: float) -> str:
    from vqexport.evaluate.sweep import markdown

    rel = folder.relative_to(out)
    b = s["baseline"]
    timing = f"Full sweep time: {minutes:.1f} min on this 2-core machine, shared with other jobs." if minutes else ""
    lines = [f"## {data}", "", timing, "",
             f"![accuracy against compression]({rel}/accuracy_vs_compression.png)", "",
             f"![file size against accuracy]({rel}/size_vs_accuracy.png)", "", markdown(s), "",
             "### Does vector quantization beat SVD at equal compression?", ""]
    for r in (p for p in s["points"] if p["method"] == "svd"):
        vq = [p for p in s["points"] if p["method"] != "svd"
              and abs(p["layer_compression"] / r["layer_compression"] - 1) < 0.25]
        if not vq:
            continue
        best = max(vq, key=lambda p: p["top1"])
        verdict = "VQ is better" if best["top1"] > r["top1"] + 0.005 else (
            "SVD is better" if r["top1"] > best["top1"] + 0.005 else "a tie within noise")
        lines.append(f"- at about {r['layer_compression']:.0f}x on the dense layers: SVD {100 * r['top1']:.1f}% "
                     f"top-1, best VQ point ({best['label']}, {best['layer_compression']:.1f}x) "
                     f"{100 * best['top1']:.1f}%: {verdict}.")
    never = sorted({family_of(p) for p in s["points"]} - set(s["best_within_1pt"]))
    if never:
        lines += ["", "No point of " + ", ".join(never) + " kept top-1 within 1 point."]
    lines.append("")
    lines.append(f"Uncompressed: {100 * b['top1']:.2f}% top-1.")
    if s.get("correct"):
        lines += ["", paired_findings(s)]
    return "\n".join(lines) + "\n"


MATCH = 0.15  # two points are "at the same rate" when their dense-layer rates differ by at most 15 %


def _matched(points, rate):
    return [p for p in points if abs(p["layer_compression"] / rate - 1) <= MATCH]


def _pair(s, a, b) -> str:
    from vqexport.evaluate.paired import compare

    r = compare(s["correct"][a["label"]], s["correct"][b["label"]], seed=0)
    return (f"{a['label']} ({a['layer_compression']:.1f}x) {100 * r.top1_a:.2f}% against {b['label']} "
            f"({b['layer_compression']:.1f}x) {100 * r.top1_b:.2f}%: {r.only_a} vs {r.only_b} discordant images, "
            f"McNemar p={r.p_value:.2g}, difference {100 * (r.top1_a - r.top1_b):+.2f} points "
            f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"), r


def _finding(title: str, rows: list, holds) -> list[str]:
    verdicts = [r for _, r in rows]
    out = [f"#### {title}: **{'holds' if holds(verdicts) else 'does not hold'}** on this data", ""]
    out += [f"- {text}: {r.verdict.replace('A', 'first').replace('B', 'second')}" for text, r in rows]
    return out + [""]


def paired_findings(s: dict) -> str:
    """The paper's three findings, each decided by paired tests on the same test images."""
    pts = [p for p in s["points"] if p["label"] in s["correct"]]
    by = lambda m: [p for p in pts if p["method"] == m]  # noqa: E731
    best = lambda ps: max(ps, key=lambda p: p["top1"])  # noqa: E731
    lines = ["### The paper's findings, tested on the same images",
             "",
             f"Each comparison pairs two points at the same dense-layer rate (within {100 * MATCH:.0f} %): the "
             "images only one of them gets right decide it (McNemar's exact test, p < 0.05; the interval is a "
             "95 % paired bootstrap of the top-1 difference). Where several points share a rate, the best "
             "of each side is taken.", ""]
    rows = []
    for km in by("kmeans"):
        pq = _matched(by("pq"), km["layer_compression"])
        if pq:
            rows.append(_pair(s, best(pq), km))
    lines += _finding("PQ beats k-means at equal rate", rows,
                      lambda v: sum(r.verdict == "A better" for r in v) > len(v) / 2)
    rows = []
    for sv in by("svd"):
        vq = _matched([p for p in pts if p["method"] in ("binary", "kmeans", "pq", "rq")], sv["layer_compression"])
        if vq:
            rows.append(_pair(s, best(vq), sv))
    lines += _finding("VQ beats SVD at equal rate", rows,
                      lambda v: sum(r.verdict == "A better" for r in v) > len(v) / 2)
    rows = []
    binary = by("binary")
    if binary:
        b = binary[0]
        from vqexport.evaluate.paired import compare

        base = compare(s["correct"][b["label"]], s["correct"]["uncompressed"], seed=0)
        rows.append((f"binary {100 * base.top1_a:.2f}% against uncompressed {100 * base.top1_b:.2f}%: "
                     f"{100 * (base.top1_a - base.top1_b):+.2f} points [{100 * base.ci_low:+.2f}, "
                     f"{100 * base.ci_high:+.2f}]", base))
        others = _matched([p for p in pts if p["method"] != "binary"], b["layer_compression"])
        for o in sorted(others, key=lambda p: -p["top1"])[:3]:
            rows.append(_pair(s, b, o))
    lines += _finding("Binarization is surprisingly good (within 1 point of uncompressed, and no worse than "
                      "the other methods at its 32x)", rows,
                      lambda v: bool(v) and v[0].top1_b - v[0].top1_a <= 0.01
                      and all(r.verdict != "B better" for r in v[1:]))
    return "\n".join(lines)


def family_of(p: dict) -> str:
    return p["method"] if p["method"] != "pq" else f"pq {'rows' if p.get('rows') else 'cols'}"


def snr_comparison(s: dict) -> str:
    """The paired measure: at each SVD point, does SVD or the best VQ point keep the logits closer?"""
    svd_wins = total = 0
    for r in (p for p in s["points"] if p["method"] == "svd"):
        vq = [p for p in s["points"] if p["method"] != "svd"
              and abs(p["layer_compression"] / r["layer_compression"] - 1) < 0.25]
        if vq:
            total += 1
            svd_wins += r["snr_db"] > max(p["snr_db"] for p in vq)
    return (f"The logit SNR (a paired measure, far finer than top-1) is higher for SVD than for every VQ point "
            f"of about the same compression at {svd_wins} of {total} compressions.")


def against_paper(summaries) -> str:
    """Where our result differs from the paper's, decided from the numbers above."""
    lines = ["## Against the paper", ""]
    for data, s in summaries:
        best = s["best_within_1pt"]
        vq = {k: v for k, v in best.items() if k != "svd"}
        top_vq = max(vq.values(), key=lambda v: v["layer_compression"]) if vq else None
        svd = best.get("svd")
        if top_vq and svd:
            winner = ("SVD reaches the higher compression" if svd["layer_compression"] > top_vq["layer_compression"]
                      else "VQ reaches the higher compression")
            lines.append(f"- {data}: within 1 point of top-1, the best VQ point is {top_vq['label']} at "
                         f"{top_vq['layer_compression']:.1f}x on the dense layers "
                         f"({top_vq['model_compression']:.1f}x whole model); SVD reaches "
                         f"{svd['layer_compression']:.1f}x ({svd['model_compression']:.1f}x). {winner}. "
                         + snr_comparison(s))
    lines += ["", PAPER_NOTES]
    return "\n".join(lines) + "\n"


PAPER_NOTES = """Fashion-MNIST is the hard case: the paired tests above decide each of the paper's
findings there. mnist5k and digits are the easy ones, where most methods tie within noise.

On mnist5k the paper's claims for VQ hold: binarization and scalar k-means stay within
1 point up to 32x on the dense layers (the paper: 8-16x within 0.5 points of top-5 for k-means),
and product quantization by rows reaches 39x. On digits (1,437 training images, upsampled from
8x8), k-means stays within 1 point only up to 10.7x (k=8), and binarization does not stay within
1 point at all (96.7 % against 98.9 %), while PQ by rows still reaches 39x.

Where the paper and we part is SVD. The paper found SVD clearly worse than VQ at equal
compression on ImageNet; on both our data sets SVD keeps its accuracy up to the highest
compression we tried (55x), and its logit SNR is the higher one at most matched sizes (above).
Why it may differ:

- The task is easy and the data small. 10 classes and a few thousand training digits do not
  need the rank that 3136x1024 and 1024x1024 dense layers offer: the trained weights are close
  to low rank, and a rank-24 factor keeps nearly all that the classifier uses. The paper's
  4096-wide layers, trained on 1.2 M ImageNet images for 1,000 classes, are much closer to full rank.
- We never let SVD cut the 10-way classifier's rank (it stays raw, and the notes say so).
  Cutting it to rank 5 costs 7 points at every compression; a sweep that did so would show SVD
  collapsing for a reason that has nothing to do with the comparison.
- Residual quantization as the paper defines it (k-means over whole rows) is the weakest VQ
  here. With k=16 its codebook is 16 whole rows, and no rq point stays within 1 point.
"""


if __name__ == "__main__":
    sys.exit(main())
