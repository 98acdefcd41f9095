"""The paper's experiment on any model: accuracy against compression for every method.

Each point records the dense-layer and whole-model compression, top-1/top-5, the time
taken, and two paired measures against the uncompressed model on the same images (the
share of top-1 predictions that agree, and the SNR of the logits in dB), which resolve
differences far below the +-0.5 points of noise that 1,000 test images carry.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import CompressConfig, QuantConfig
from ..errors import ConfigError
from ..ir import matrix_shape
from ..util.fileio import atomic_path
from ..util.report import human_bytes, table
from .datasets import fit_inputs, load_dataset

OUTPUT_FILES = ("results.json", "results.md", "accuracy_vs_compression.png", "size_vs_accuracy.png")
SMALL_LAYER = 32  # under svd a dense layer with min(m, n) at most this stays raw (see svd_overrides)


def full_grid() -> list[dict]:
    pts = [{"method": "binary"}]
    pts += [{"method": "kmeans", "k": k} for k in (2, 4, 8, 16, 32, 64, 256)]
    pts += [{"method": "pq", "d": d, "k": k, "rows": rows}
            for rows in (False, True) for d in (1, 2, 4, 8) for k in (16, 64, 256)]
    pts += [{"method": "rq", "k": 16, "stages": t} for t in (1, 2, 3, 4)]
    return pts


def quick_grid() -> list[dict]:
    return [{"method": "kmeans", "k": 16}, {"method": "pq", "d": 8, "k": 16}]


# Points whose files are also written as .onnx / .tflite for the size plot (each costs an export).
EXPORTED = [{"method": "binary"}, {"method": "kmeans", "k": 2}, {"method": "kmeans", "k": 16},
            {"method": "kmeans", "k": 256}, {"method": "pq", "d": 8, "k": 16, "rows": False},
            {"method": "rq", "k": 16, "stages": 2}]


def label(p: dict) -> str:
    m = p["method"]
    if m == "kmeans":
        return f"kmeans k={p['k']}"
    if m == "pq":
        return f"pq{'-rows' if p.get('rows') else ''} d={p['d']} k={p['k']}"
    if m == "rq":
        return f"rq t={p['stages']} k={p['k']}"
    if m == "svd":
        return f"svd @{p['target']:.0f}x"
    if m == "budget":
        return f"budget @{p['target']:.0f}x"
    return m


def svd_overrides(model, target: float, types=("linear",)) -> tuple[dict, dict, list[str]]:
    """Per-layer ranks that give each layer of `types` about `target`x, and the layers to compress.

    A small layer (min(m, n) <= SMALL_LAYER, such as a 10-way classifier) stays raw: any rank
    below its full rank squeezes the outputs into a subspace (rank 5 of 10 logits costs this
    CNN 7 points at every compression), and its full rank saves nothing. The notes say so.
    """
    state = model.state_dict()
    ranks, notes, layers = {}, {}, []
    for name in [n for n, kind in model.weights().items() if kind in types]:
        m, n = matrix_shape(state[name].shape)
        r = max(1, int(m * n / (target * (m + n))))
        if min(m, n) <= SMALL_LAYER:
            notes[name] = f"kept raw: rank {r} of {min(m, n)} would collapse the {m}x{n} layer's outputs"
            continue
        ranks[name] = {"rank": min(r, min(m, n))}
        layers.append(name)
    return ranks, notes, layers


def _calibrates(config: CompressConfig) -> bool:
    """Whether --calib applies to a sweep point (its global method; overrides are the budget's)."""
    from ..calibrate.refit import applies

    return applies(config.quant)


def run_sweep(model_path, data: str, out_dir, quick: bool = False, formats=("vqm",), arch=None,
              trust_pickle=False, quiet=False, points: list[dict] | None = None, svd_targets=None,
              budget_rates=None, scale: float | None = None, types=("linear",), min_size: int = 0,
              calib: str | None = None, calib_images: int | None = None) -> dict:
    """scale: divide the user's data by it (--scale 255); None feeds it as given.
    types, min_size: which weights every point compresses; by default the dense layers, all of
    them, as in the paper's experiment (types=("conv", "linear"): the whole model).
    budget_rates: whole-model compression rates at which the budget search (vqexport.budget)
    also places a point, so the plots show its frontier beside the single settings.
    calib: calibration data (vqexport.calibrate) for every point whose method it applies to."""
    import vqexport

    from ..torch_bridge import to_torch
    from ..util.progress import step_bar
    from .accuracy import evaluate_file, predict, topk
    from .runtimes import TorchRuntime

    formats = [f.strip() for f in formats if f.strip()]
    bad = set(formats) - {"vqm", "onnx", "tflite"}
    if bad:
        raise ConfigError(f"--formats: unknown format(s) {', '.join(sorted(bad))}; use vqm, onnx, tflite")
    out = Path(out_dir)
    model = vqexport.load_model(model_path, arch=arch, trust_pickle=trust_pickle)
    if not any(kind in types for kind in model.weights().values()):
        raise ConfigError(f"{model_path}: has no {'/'.join(types)} layer to sweep")
    ref_rt = TorchRuntime(model.module, model.input, model.labels, path=model_path)
    x, y = load_dataset(data, ref_rt.input_shape, scale, model.labels)
    x = fit_inputs(x, ref_rt.input_shape, data, model_path)
    ref_logits = predict(ref_rt, x)
    if y.max(initial=0) >= ref_logits.shape[1]:
        raise ConfigError(f"{data}: has label {int(y.max())}, but {model_path} has {ref_logits.shape[1]} outputs")
    base = {"top1": topk(ref_logits, y, 1), "top5": topk(ref_logits, y, 5)}
    calibration = None
    if calib is not None:
        from ..calibrate import DEFAULT_IMAGES
        from ..calibrate import calibration as make_calibration

        calibration = make_calibration(model, calib, calib_images or DEFAULT_IMAGES)
    elif calib_images is not None:
        raise ConfigError("--calib-images has no effect without --calib DATA")
    out.mkdir(parents=True, exist_ok=True)  # only once the model and the data have passed their checks

    grid = points if points is not None else (quick_grid() if quick else full_grid())
    results = []
    correct = {"uncompressed": ref_logits.argmax(1) == y}  # per image, for paired tests (not in the JSON)
    unreachable = {}
    bar = step_bar(len(grid) + len(svd_targets or []) + 1, "sweep", quiet)

    def measure(p: dict, config: CompressConfig, notes: dict | None = None) -> dict:
        bar.set_description_str(f"sweep: {label(p)}")
        start = time.perf_counter()
        calibrated = calibration is not None and _calibrates(config)
        cm = vqexport.compress(model, config=config, calib=calibration if calibrated else None)
        seconds = time.perf_counter() - start
        logits = predict(TorchRuntime(to_torch(cm, model), model.input), x)
        s = cm.summary()
        noise = float(np.sum((ref_logits.astype(np.float64) - logits) ** 2))
        r = {**p, "label": label(p), "calibrated": calibrated, "layer_compression": s["layer_compression"],
             "model_compression": s["model_compression"], "top1": topk(logits, y, 1), "top5": topk(logits, y, 5),
             "agree": float(np.mean(logits.argmax(1) == ref_logits.argmax(1))),
             "snr_db": (10 * math.log10(float(np.sum(ref_logits.astype(np.float64) ** 2)) / noise)
                        if noise else math.inf),
             "seconds": seconds, "skipped": cm.metadata.get("skipped", {}), "notes": notes or {}, "files": {}}
        correct[r["label"]] = logits.argmax(1) == y
        if any(_same(p, e) for e in EXPORTED) or quick:
            r["files"] = _write_formats(cm, model, formats, x, y, evaluate_file)
        bar.update(1)
        return r

    for p in grid:
        q = QuantConfig(**p)
        with _quiet_warnings():
            results.append(measure(p, CompressConfig(quant=q, types=types, min_size=min_size)))
    # SVD at the compression of the VQ points, so the paper's comparison is at equal size.
    targets = svd_targets or sorted({round(r["layer_compression"]) for r in results if r["layer_compression"] >= 2})
    if quick:
        targets = targets[:1]
    bar.total = len(grid) + len(targets) + 1
    for target in targets:
        overrides, notes, layers = svd_overrides(model, target, types)
        config = CompressConfig(quant=QuantConfig(method="svd"), layers=tuple(layers), types=types, min_size=0,
                                overrides=tuple(overrides.items()))
        results.append(measure({"method": "svd", "target": float(target)}, config, notes))
    if budget_rates:
        from ..budget import Budget

        bar.total += len(budget_rates)
        bar.set_description_str("sweep: budget sensitivities")
        budget = Budget(model, data, seed=0)
        dense_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        for rate in budget_rates:
            try:
                plan = budget.for_size(int(dense_bytes / rate))
            except ConfigError as e:  # a rate beyond the smallest plan: said in the summary, not fatal
                unreachable[f"budget @{rate:g}x"] = str(e)
                bar.update(1)
                continue
            results.append(measure({"method": "budget", "target": float(rate),
                                    "plan": " ".join(plan.override_args())}, plan.config))
    bar.update(1)
    bar.close()

    summary = {"model": str(model_path), "data": data, "images": int(len(y)), "baseline": base,
               "dense_bytes": int(sum(t.numel() * t.element_size() for t in model.state_dict().values())),
               "points": results, "best_within_1pt": best_within(results, base["top1"], 0.01),
               "unreachable": unreachable}
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=float))
    summary["correct"] = correct
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown(summary))
    plot_accuracy(summary, out / "accuracy_vs_compression.png")
    plot_sizes(summary, out / "size_vs_accuracy.png")
    summary["outputs"] = [str(out / n) for n in OUTPUT_FILES]
    return summary


def _same(p: dict, e: dict) -> bool:
    return all(p.get(k, False if k == "rows" else None) == v for k, v in e.items())


def _write_formats(cm, model, formats, x, y, evaluate_file) -> dict:
    import vqexport

    files = {}
    with tempfile.TemporaryDirectory() as d:
        for fmt in formats:
            path = Path(d) / f"m.{fmt}"
            if fmt == "vqm":
                vqexport.write_vqm(cm, path)
            elif fmt == "onnx":
                vqexport.to_onnx(cm, path, model=model)
            else:
                vqexport.to_tflite(cm, path, model=model)
            # Each file is read back and run: its accuracy is the file's, not the in-memory model's.
            r = evaluate_file(path, "given", images=(x, y), source=model if fmt == "vqm" else None)
            files[fmt] = {"bytes": os.path.getsize(path), "top1": r["top1"]}
    return files


class _quiet_warnings:
    """Skipped layers are recorded in each point; the sweep need not print them forty times."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", UserWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def family(r: dict) -> str:
    if r["method"] == "pq":
        return f"pq {'rows' if r.get('rows') else 'cols'} k={r['k']}"
    return r["method"]


def best_within(results, base_top1: float, tolerance: float) -> dict:
    """Per method family: the highest whole-model compression with top-1 at most `tolerance` below base."""
    best = {}
    for r in results:
        fam = r["method"] if r["method"] != "pq" else f"pq {'rows' if r.get('rows') else 'cols'}"
        if r["top1"] >= base_top1 - tolerance - 1e-9 and r["model_compression"] > best.get(fam, {}).get(
                "model_compression", 0):
            best[fam] = {"label": r["label"], "model_compression": r["model_compression"],
                         "layer_compression": r["layer_compression"], "top1": r["top1"]}
    return best


def markdown(s: dict) -> str:
    b = s["baseline"]
    lines = [f"Model `{Path(s['model']).name}` on `{s['data']}` ({s['images']} images): uncompressed top-1 "
             f"{100 * b['top1']:.2f}%, top-5 {100 * b['top5']:.2f}%.", ""]
    rows = []
    for r in s["points"]:
        notes = "; ".join([f"{k} raw ({v})" for k, v in r["skipped"].items()] + list(r["notes"].values()))
        rows.append([r["label"], f"{r['layer_compression']:.1f}x", f"{r['model_compression']:.1f}x",
                     f"{100 * r['top1']:.1f}", f"{100 * (r['top1'] - b['top1']):+.1f}", f"{100 * r['top5']:.1f}",
                     f"{100 * r['agree']:.1f}", f"{r['snr_db']:.1f}", f"{r['seconds']:.1f}", notes])
    lines.append(_md_table(rows, ["point", "layers", "whole model", "top-1 %", "change", "top-5 %",
                                  "agree %", "logit SNR dB", "seconds", "notes"]))
    lines += ["", "Highest whole-model compression with top-1 within 1 point of the uncompressed model:", ""]
    lines.append(_md_table([[fam, v["label"], f"{v['model_compression']:.1f}x", f"{v['layer_compression']:.1f}x",
                             f"{100 * v['top1']:.1f}"] for fam, v in s["best_within_1pt"].items()],
                           ["method", "point", "whole model", "layers", "top-1 %"]))
    exported = [r for r in s["points"] if r["files"]]
    if exported:
        fmts = sorted({f for r in exported for f in r["files"]})
        lines += ["", "File sizes of the exported points (the size plot):", ""]
        lines.append(_md_table([[r["label"]] + [f"{human_bytes(r['files'][f]['bytes'])} / "
                                                f"{100 * r['files'][f]['top1']:.1f}%" for f in fmts] for r in exported],
                               ["point"] + [f".{f} size / top-1" for f in fmts]))
    return "\n".join(lines) + "\n"


def _md_table(rows, headers) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def plot_accuracy(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    base = 100 * s["baseline"]["top1"]
    # Points that collapsed are drawn on the floor with their value, so they do not squash
    # the few points around the uncompressed accuracy that the comparison is about.
    floor = max(min(100 * r["top1"] for r in s["points"]) - 1, base - 12, 0)
    fams = {}
    for r in s["points"]:
        fams.setdefault(family(r), []).append(r)
    for fam, rs in fams.items():
        rs = sorted(rs, key=lambda r: r["layer_compression"])
        xs = [r["layer_compression"] for r in rs]
        ys = [max(100 * r["top1"], floor) for r in rs]
        line, = ax.plot(xs, ys, marker="o", ms=4, ls="--" if fam == "svd" else "-", label=fam,
                        lw=2.5 if fam == "budget" else 1.5)
        for r, xv in zip(rs, xs, strict=True):
            if 100 * r["top1"] < floor:
                ax.plot([xv], [floor], marker="v", ms=8, color=line.get_color())
                ax.annotate(f"{100 * r['top1']:.0f}%", (xv, floor), fontsize=7, xytext=(2, 6),
                            textcoords="offset points", color=line.get_color())
    ax.axhline(base, color="k", lw=0.8, ls=":", label="uncompressed")
    ax.axhline(base - 1, color="grey", lw=0.6, ls=":", label="1 point below")
    _times_axis(ax, [r["layer_compression"] for r in s["points"]])
    ax.set_xlabel("compression rate of the compressed layers (log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(floor - 0.5, base + 1)
    ax.set_title(f"{Path(s['model']).name} on {s['data']}: accuracy against compression")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _times_axis(ax, values) -> None:
    """A log axis with plain ticks at powers of two: 2x, 4x, 8x ..."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    lo, hi = min(values) / 1.3, max(values) * 1.3
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator([2.0 ** e for e in range(-2, 12) if lo <= 2.0 ** e <= hi]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))


def plot_sizes(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    exported = [r for r in s["points"] if r["files"]]
    # The formats land almost on top of each other (that is the point: all stay compressed), so
    # they are drawn hollow at different sizes, and each model point is labelled once.
    labelled = set()
    for i, (fmt, marker, size) in enumerate((("vqm", "o", 110), ("onnx", "s", 55), ("tflite", "^", 25))):
        pts = [(r["files"][fmt]["bytes"] / 1024, 100 * r["files"][fmt]["top1"], r["label"])
               for r in exported if fmt in r["files"]]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, s=size, facecolors="none",
                       edgecolors=f"C{i}", linewidths=1.2, label=f".{fmt}")
            for px, py, lab in pts:
                if lab not in labelled:
                    labelled.add(lab)
                    ax.annotate(lab, (px, py), fontsize=7, xytext=(6, 4), textcoords="offset points")
    ax.axvline(s["dense_bytes"] / 1024, color="k", lw=0.8, ls=":", label="dense float32")
    ax.axhline(100 * s["baseline"]["top1"], color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("whole-model file size (KiB, log)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("file size against accuracy, by format")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def format_sweep(s: dict) -> str:
    b = s["baseline"]
    rows = [[r["label"], f"{r['layer_compression']:.1f}x", f"{r['model_compression']:.1f}x",
             f"{100 * r['top1']:.1f}%", f"{100 * (r['top1'] - b['top1']):+.1f}", f"{100 * r['agree']:.1f}%",
             f"{r['snr_db']:.1f}"] for r in s["points"]]
    text = table(rows, ["point", "layers", "whole model", "top-1", "change", "agree", "SNR dB"])
    return text + "\nwrote " + ", ".join(s["outputs"])
