"""Hash every file the command line writes, to prove a refactor changes no output.

Why: a refactor of vqexport's internals must leave the .vqm, .onnx and .tflite files
byte-identical for the same inputs and seeds. This runs the real command line
(`python -m vqexport.cli` in subprocesses, with PYTHONPATH set to the checkout this script
lives in, so it tests THAT checkout) on the cached reference CNN (mnist5k) for every method,
and on a small TorchScript CNN without normalisation metadata, and records a sha256 per file.

Usage:
    python tools/identical_outputs.py OUT_DIR [--json]      # writes OUT_DIR/hashes.json
    python tools/identical_outputs.py --compare A.json B.json   # exit 1 if any file differs

Run it on the commit before the refactor and on the refactor (two worktrees, two OUT_DIRs),
then --compare the two hashes.json. Each command runs in its own folder and every file it
leaves there is hashed (to-onnx/to-tflite also write a .vqm beside; --decode load a side file).
Keys starting with "inputs/" are inputs (the reference .pt is hashed where it is cached, not
copied), so a comparison also shows when the two runs did not start from the same files.
The reference model is never trained here: if it is not cached the script exits 2.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = "7"  # not the CLI's default, so a change of the default seed's handling shows too
METHODS = {
    "binary": ["--method", "binary"],  # takes no --seed (the CLI refuses one)
    "kmeans": ["--method", "kmeans", "--k", "16"],
    "pq": ["--method", "pq", "--k", "16", "--d", "4"],
    "pq-rows": ["--method", "pq", "--k", "16", "--d", "4", "--rows"],
    "rq": ["--method", "rq", "--k", "16", "--stages", "2"],
    "svd": ["--method", "svd", "--rank", "8"],
}
DECODES = ["once", "every-run", "load"]


def seeded(method: str) -> list[str]:
    return METHODS[method] + ([] if method == "binary" else ["--seed", SEED])

# Run in a subprocess with the checkout under test first on the path: the reference's cached
# path, found without training (training would take minutes and is not what is checked).
FIND_REFERENCE = """
import sys, vqexport.zoo.train as t
def refuse(*a, **k):
    raise SystemExit(3)
t.train_reference = refuse
from vqexport.zoo.cnn import reference_path
print(reference_path("mnist5k"))
"""
# A small conv net whose input spec has a shape but no mean/std, saved as a user would have it.
MAKE_SMALL = """
import sys, torch
from vqexport.zoo.cnn import save_torchscript
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    torch.nn.Linear(4 * 6 * 6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
save_torchscript(net, __import__("pathlib").Path(sys.argv[1]),
                 {"input": {"shape": [1, 1, 12, 12], "layout": "NCHW"}, "labels": [str(i) for i in range(10)]})
"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def python(args: list[str], log: list[dict], name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    p = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    log.append({"step": name, "seconds": round(time.monotonic() - start, 1), "rc": p.returncode})
    return p


def steps(ref: Path, small: Path, out: Path):
    """(folder, CLI arguments) for each command; a folder's files are that command's outputs."""
    for m in METHODS:
        flags = seeded(m)
        vqm = out / m / "compress" / "model.vqm"
        yield f"{m}/compress", ["compress", ref, *flags, "-o", vqm]
        if m == "kmeans":
            yield f"{m}/compress-f16", ["compress", ref, *flags, "--codebook-dtype", "float16",
                                        "-o", out / m / "compress-f16" / "model.vqm"]
        yield f"{m}/onnx", ["to-onnx", ref, *flags, "-o", out / m / "onnx" / "model.onnx"]
        for d in DECODES:
            yield f"{m}/tflite-{d}", ["to-tflite", ref, *flags, "--decode", d,
                                      "-o", out / m / f"tflite-{d}" / "model.tflite"]
        # From the .vqm written above, with the model it came from, as `vqexport to-onnx x.vqm --model x.pt`.
        yield f"{m}/vqm-onnx", ["to-onnx", vqm, "--model", ref, "-o", out / m / "vqm-onnx" / "model.onnx"]
        yield f"{m}/vqm-tflite-once", ["to-tflite", vqm, "--model", ref, "--decode", "once",
                                       "-o", out / m / "vqm-tflite-once" / "model.tflite"]
    # Without --model: the architecture is rebuilt from the .vqm's metadata (an allow-listed class).
    vqm = out / "kmeans" / "compress" / "model.vqm"
    yield "kmeans/vqm-onnx-noarch", ["to-onnx", vqm, "-o", out / "kmeans" / "vqm-onnx-noarch" / "model.onnx"]
    flags = seeded("kmeans")
    yield "small/compress", ["compress", small, *flags, "-o", out / "small" / "compress" / "model.vqm"]
    yield "small/onnx", ["to-onnx", small, *flags, "-o", out / "small" / "onnx" / "model.onnx"]
    yield "small/tflite-once", ["to-tflite", small, *flags, "--decode", "once",
                                "-o", out / "small" / "tflite-once" / "model.tflite"]


def produce(out: Path, reference: str | None, as_json: bool) -> int:
    if out.exists() and any(out.iterdir()):
        print(f"identical_outputs: {out}: not empty; give a new folder", file=sys.stderr)
        return 2
    log: list[dict] = []
    if reference is None:
        p = python(["-c", FIND_REFERENCE], log, "find reference")
        if p.returncode != 0:
            why = "not cached (this tool does not train it)" if p.returncode == 3 else p.stderr.strip()[-500:]
            print(f"identical_outputs: the reference CNN (mnist5k): {why}", file=sys.stderr)
            return 2
        reference = p.stdout.strip().splitlines()[-1]
    ref = Path(reference)
    if not ref.is_file():
        print(f"identical_outputs: {ref}: the reference CNN is not cached (this tool does not train it)",
              file=sys.stderr)
        return 2
    small = out / "inputs" / "small.pt"
    small.parent.mkdir(parents=True)
    p = python(["-c", MAKE_SMALL, str(small)], log, "inputs/small.pt")
    if p.returncode != 0:
        print(f"identical_outputs: making the small model failed:\n{p.stderr[-2000:]}", file=sys.stderr)
        return 1
    hashes = {"inputs/reference.pt": sha256(ref), "inputs/small.pt": sha256(small)}
    total = time.monotonic()
    for folder, args in steps(ref, small, out):
        (out / folder).mkdir(parents=True)
        p = python(["-m", "vqexport.cli", "--quiet", *map(str, args)], log, folder)
        if p.returncode != 0:
            print(f"identical_outputs: {folder}: exit {p.returncode}: vqexport {' '.join(map(str, args))}\n"
                  f"{p.stderr[-2000:]}", file=sys.stderr)
            return 1
        if not as_json:
            print(f"{log[-1]['seconds']:7.1f} s  {folder}", file=sys.stderr, flush=True)
        for f in sorted((out / folder).rglob("*")):
            if f.is_file():
                hashes[f.relative_to(out).as_posix()] = sha256(f)
    (out / "hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    (out / "steps.json").write_text(json.dumps({"reference": str(ref), "repo": str(REPO), "seed": SEED,
                                                "seconds": round(time.monotonic() - total, 1), "steps": log},
                                               indent=1) + "\n")
    if as_json:
        print(json.dumps(hashes, indent=1, sort_keys=True))
    else:
        sizes = {k: (out / k).stat().st_size if (out / k).is_file() else ref.stat().st_size for k in hashes}
        for k, h in sorted(hashes.items()):
            print(f"{k:<40} {sizes[k]:>10}  {h}")
        print(f"{len(hashes)} files; {out / 'hashes.json'}; {time.monotonic() - total:.0f} s")
    return 0


def compare(a_path: str, b_path: str, as_json: bool) -> int:
    try:
        a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    except (OSError, ValueError) as e:
        print(f"identical_outputs: {e}", file=sys.stderr)
        return 2
    rows = {k: ("only in A" if k not in b else "only in B" if k not in a else
                "same" if a[k] == b[k] else "DIFFERS") for k in sorted(set(a) | set(b))}
    bad = {k: v for k, v in rows.items() if v != "same"}
    if as_json:
        print(json.dumps({"identical": not bad, "differences": bad, "files": len(rows)}, indent=1))
    else:
        for k, v in rows.items():
            print(f"{v:<10} {k}")
        print(f"{len(rows) - len(bad)} of {len(rows)} files identical"
              + ("" if not bad else f"; {len(bad)} differ or are missing"))
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="an empty or new folder for the outputs and hashes.json")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"))
    ap.add_argument("--reference", help="the reference CNN's .pt (default: the cached mnist5k one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare, args.json)
    if not args.out:
        ap.error("give OUT_DIR, or --compare A.json B.json")
    return produce(Path(args.out).resolve(), args.reference, args.json)


if __name__ == "__main__":
    sys.exit(main())
