"""The size budget on the Fashion-MNIST reference networks: rate against top-1, and the frontier plot.

    .venv/bin/python tools/budget_experiment.py [--networks paper,mobile] [--rates 8,16,24,30,40,50,64]
                                               [--drops 0.5,1.0] [--out docs/results] [--json]

For each network (trained and cached by vqexport.zoo.reference.reference_path), the budget search
measures each layer's sensitivity once on 1,000 training images, then cuts a plan for every
whole-model rate in --rates (file size on disk = dense float32 bytes / rate) and for every
--drops (maximum top-1 drop, searched on 2,000 held-out training images). Each plan is written as
a .vqm, read back, and evaluated on the 10,000 test images; the uncompressed model runs on the
same images in the same process, and a McNemar test says whether its loss is more than noise.
Writes docs/results/budget.md and budget_frontier.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from vqexport import to_torch, write_vqm

ROOT = Path(__file__).resolve().parents[1]


def run(network: str, rates, drops, seed: int) -> dict:
    import vqexport
    from vqexport.api import read_vqm
    from vqexport.budget import Budget
    from vqexport.errors import ConfigError
    from vqexport.evaluate.accuracy import predict
    from vqexport.evaluate.datasets import fashion
    from vqexport.evaluate.paired import compare
    from vqexport.evaluate.runtimes import TorchRuntime
    from vqexport.zoo.reference import reference_path

    model = vqexport.load_model(reference_path("fashion", network=network))
    x, y = fashion("test")
    base_ok = predict(TorchRuntime(model.module, model.input), x).argmax(1) == y
    dense_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    t0 = time.perf_counter()
    budget = Budget(model, "fashion", seed=seed)
    sensitivity_s = time.perf_counter() - t0
    rows = []
    plans = [("rate", r, lambda r=r: budget.for_size(int(dense_bytes / r))) for r in rates]
    plans += [("drop", d, lambda d=d: budget.for_drop(d)) for d in drops]
    for kind, value, make in plans:
        t0 = time.perf_counter()
        try:
            plan = make()
        except ConfigError as e:
            rows.append({"kind": kind, "target": value, "error": str(e)})
            continue
        cm = vqexport.compress(model, config=plan.config)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "plan.vqm"
            write_vqm(cm, path)
            size = os.path.getsize(path)
            back = read_vqm(path)
        ok = predict(TorchRuntime(to_torch(back, model), model.input), x).argmax(1) == y
        p = compare(ok, base_ok, seed=seed)
        rows.append({"kind": kind, "target": value, "bytes": size, "rate": dense_bytes / size,
                     "top1": float(ok.mean()), "drop_points": 100 * float(base_ok.mean() - ok.mean()),
                     "p_value": p.p_value, "held_out_drop": plan.measured_drop,
                     "plan": dict(plan.settings), "flags": plan.override_args(),
                     "seconds": time.perf_counter() - t0})
    linear = sum(v.numel() for k, v in model.state_dict().items() if k in model.dense_layers())
    weights = sum(v.numel() for k, v in model.state_dict().items() if k.endswith("weight"))
    return {"network": network, "dense_bytes": dense_bytes, "top1": float(base_ok.mean()), "rows": rows,
            "sensitivity_seconds": sensitivity_s, "linear_share": linear / weights,
            "dense_only_ceiling": dense_bytes / (dense_bytes - 4 * linear)}


def best_within(r: dict, points: float = 1.0):
    ok = [x for x in r["rows"] if "rate" in x and x["drop_points"] <= points]
    return max(ok, key=lambda x: x["rate"]) if ok else None


def markdown(results, cmd: str) -> str:
    out = ["# The size budget on Fashion-MNIST", "", f"Made by `{cmd}`.", "",
           "The budget search (`vqexport compress MODEL --target-size SIZE --data fashion`, or `--max-drop POINTS`) "
           "measures how much each layer's setting moves the model's outputs (the KL divergence from the "
           "uncompressed softmax on 1,000 training images, one layer compressed at a time, for every candidate "
           "method, k, d and rows), then chooses one setting per layer by a Lagrangian search (then spends what "
           "it leaves unused, greedily) so the file fits "
           "the size, or the accuracy drop on 2,000 held-out training images stays within the limit. The size is "
           "the `.vqm` on disk. Top-1 is on the 10,000 test images, which the search never sees; p is McNemar's "
           "test of the plan against the uncompressed model on the same images.", "",
           "![budget frontier](budget_frontier.png)", ""]
    for r in results:
        out += [f"## {r['network']} network (uncompressed {100 * r['top1']:.2f}% top-1, "
                f"{r['dense_bytes'] / 1024:.0f} KiB float32; {100 * r['linear_share']:.1f}% of weights in Linear)", "",
                f"Sensitivity measured in {r['sensitivity_seconds']:.0f} s.", "",
                "| budget | file | whole-model rate | top-1 % | drop (points) | McNemar p | held-out drop | plan |",
                "|---|---|---|---|---|---|---|---|"]
        for x in r["rows"]:
            target = f"{x['target']:g}x" if x["kind"] == "rate" else f"drop <= {x['target']:g}"
            if "error" in x:
                out.append(f"| {target} | - | - | - | - | - | - | {x['error']} |")
                continue
            plan = "; ".join(f"{n}: {_setting(s)}" for n, s in x["plan"].items())
            held = "-" if x["held_out_drop"] is None else f"{x['held_out_drop']:.2f}"
            out.append(f"| {target} | {x['bytes'] / 1024:.1f} KiB | {x['rate']:.1f}x | {100 * x['top1']:.2f} | "
                       f"{x['drop_points']:+.2f} | {x['p_value']:.2g} | {held} | {plan} |")
        best = best_within(r)
        out += ["", (f"Best rate within 1 point of top-1: **{best['rate']:.1f}x** ({best['bytes'] / 1024:.1f} KiB, "
                     f"{100 * best['top1']:.2f}%)." if best else "No plan stayed within 1 point."),
                f"Dense-only ceiling (every Linear weight free, the rest float32): {r['dense_only_ceiling']:.2f}x.", ""]
    return "\n".join(out) + "\n"


def _setting(s: dict) -> str:
    if s["method"] == "raw":
        return "raw"
    return s["method"] + "".join(f" {k}={v}" for k, v in s.items() if k != "method")


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    for i, r in enumerate(results):
        pts = sorted((x["rate"], 100 * x["top1"]) for x in r["rows"] if "rate" in x)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=f"{r['network']}: budget")
        ax.axhline(100 * r["top1"], color=f"C{i}", ls=":", lw=0.8)
        ax.axhline(100 * r["top1"] - 1, color=f"C{i}", ls="--", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("whole-model compression (file on disk, log)")
    ax.set_ylabel("top-1 on the 10,000 test images (%)")
    ax.set_title("Fashion-MNIST: the budget's frontier (dotted: uncompressed, dashed: 1 point below)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="paper,mobile")
    ap.add_argument("--rates", default="8,16,24,30,40,50,64")
    ap.add_argument("--drops", default="0.5,1.0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    floats = lambda s: [float(v) for v in s.split(",") if v]  # noqa: E731
    results = []
    for net in args.networks.split(","):
        print(f"{net}: measuring", file=sys.stderr)
        results.append(run(net, floats(args.rates), floats(args.drops), args.seed))
    out = Path(args.out)
    cmd = "python tools/budget_experiment.py " + " ".join(sys.argv[1:])
    (out / "budget.md").write_text(markdown(results, cmd.strip()))
    plot(results, out / "budget_frontier.png")
    if args.json:
        print(json.dumps(results, indent=2, default=float))
    else:
        print(f"wrote {out / 'budget.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
