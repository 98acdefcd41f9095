"""Hash every file the command line writes, to prove a refactor changes no output.

Why: a refactor of vqexport's internals must leave the .vqm, .onnx and .tflite files
byte-identical for the same inputs and seeds. This runs the real command line
(`python -m vqexport.cli` in subprocesses, with PYTHONPATH set to the checkout this script
lives in, so it tests THAT checkout) on the cached reference CNN (mnist5k) for every method,
and on a small TorchScript CNN without normalisation metadata, and records a sha256 per file.

Usage (the two runs must share the same --small file: a saved TorchScript file is never the
same bytes twice, see MAKE_SMALL; keys starting with "inputs/" hash the inputs, so --compare
shows when they were not the same):
    python tools/identical_outputs.py OUT_DIR [--small BASELINE/inputs/small.pt] [--json]
    python tools/identical_outputs.py --compare A/hashes.json B/hashes.json   # exit 1 if any differ
Each command runs in its own folder and every file it leaves there is hashed (to-onnx/to-tflite
also write a .vqm beside the output). The reference is never trained here: not cached, exit 2.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
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


def seeded(method: str) -> list[str]:
    return METHODS[method] + ([] if method == "binary" else ["--seed", SEED])


# Run in a subprocess with the checkout under test first on the path: the reference's cached
# path, found without training (training would take minutes and is not what is checked).
FIND_REFERENCE = """
import importlib.util, sys, vqexport.zoo.train as t
# vqexport.zoo.reference since the refactor of issue 16, vqexport.zoo.cnn before it
ref = importlib.import_module("vqexport.zoo.reference" if importlib.util.find_spec("vqexport.zoo.reference")
                              else "vqexport.zoo.cnn")
t.train_reference = ref.train_reference = lambda *a, **k: sys.exit(3)
print(ref.reference_path("mnist5k"))
"""
# A small conv net whose input spec has a shape but no mean/std, saved as a user would have it.
# Its bytes differ every time it is saved (torch.jit.save writes a random .data/serialization_id,
# names the archive's top folder after save_torchscript's randomly named temp file, and orders a
# module's Final constants by string hash), and each output records the source's sha256 in its
# metadata: so compare runs made with the same --small file.
MAKE_SMALL = """
import sys, torch
from pathlib import Path
try:
    from vqexport.zoo.reference import save_torchscript
except ImportError:  # before issue 16's refactor
    from vqexport.zoo.cnn import save_torchscript
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    torch.nn.Linear(4 * 6 * 6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).eval()
save_torchscript(net, Path(sys.argv[1]),
                 {"input": {"shape": [1, 1, 12, 12], "layout": "NCHW"}, "labels": [str(i) for i in range(10)]})
"""


def fail(message: str, code: int = 2) -> int:
    print(f"identical_outputs: {message}", file=sys.stderr)
    return code


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # the largest file is a few MB


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
        for d in ("once", "every-run", "load"):
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


def produce(out: Path, reference: str | None, small_from: str | None, as_json: bool) -> int:
    if out.exists() and any(out.iterdir()):
        return fail(f"{out}: not empty; give a new folder")
    if small_from is not None and not Path(small_from).is_file():
        return fail(f"{small_from}: no such file")
    log: list[dict] = []
    if reference is None:
        p = python(["-c", FIND_REFERENCE], log, "find reference")
        if p.returncode != 0:
            return fail("the reference CNN (mnist5k): " + ("not cached (this tool does not train it)"
                                                           if p.returncode == 3 else p.stderr.strip()[-500:]))
        reference = p.stdout.strip().splitlines()[-1]
    ref = Path(reference)
    if not ref.is_file():
        return fail(f"{ref}: no such file")
    small = out / "inputs" / "small.pt"
    small.parent.mkdir(parents=True)
    if small_from is not None:
        shutil.copyfile(small_from, small)
    elif (p := python(["-c", MAKE_SMALL, str(small)], log, "inputs/small.pt")).returncode != 0:
        return fail(f"making the small model failed:\n{p.stderr[-2000:]}", 1)
    hashes = {"inputs/reference.pt": sha256(ref), "inputs/small.pt": sha256(small)}
    total = time.monotonic()
    for folder, args in steps(ref, small, out):
        (out / folder).mkdir(parents=True)
        p = python(["-m", "vqexport.cli", "--quiet", *map(str, args)], log, folder)
        if p.returncode != 0:
            return fail(f"{folder}: exit {p.returncode}: vqexport {' '.join(map(str, args))}\n{p.stderr[-2000:]}", 1)
        if not as_json:
            print(f"{log[-1]['seconds']:7.1f} s  {folder}", file=sys.stderr, flush=True)
        for f in sorted((out / folder).rglob("*")):
            if f.is_file():
                hashes[f.relative_to(out).as_posix()] = sha256(f)
    (out / "hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    run = {"reference": str(ref), "repo": str(REPO), "seconds": round(time.monotonic() - total, 1), "steps": log}
    (out / "steps.json").write_text(json.dumps(run, indent=1) + "\n")
    if as_json:
        print(json.dumps(hashes, indent=1, sort_keys=True))
    else:
        for k, h in sorted(hashes.items()):
            print(f"{k:<40} {(ref if k == 'inputs/reference.pt' else out / k).stat().st_size:>10}  {h}")
        print(f"{len(hashes)} files; {out / 'hashes.json'}; {time.monotonic() - total:.0f} s")
    return 0


def compare(a_path: str, b_path: str, as_json: bool) -> int:
    try:
        a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    except (OSError, ValueError) as e:
        return fail(str(e))
    rows = {k: ("only in A" if k not in b else "only in B" if k not in a else
                "same" if a[k] == b[k] else "DIFFERS") for k in sorted(set(a) | set(b))}
    bad = {k: v for k, v in rows.items() if v != "same"}
    if any(k.startswith("inputs/") for k in bad):
        print("note: an input differs, so every output made from it differs too (a .vqm's metadata, copied "
              "into its .onnx/.tflite, records the source file's sha256); compare runs from the same inputs",
              file=sys.stderr)
    if as_json:
        print(json.dumps({"identical": not bad, "differences": bad, "files": len(rows)}, indent=1))
    else:
        for k, v in rows.items():
            print(f"{v:<10} {k}")
        print(f"{len(rows) - len(bad)} of {len(rows)} files identical" + (f"; {len(bad)} not" if bad else ""))
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="an empty or new folder for the outputs and hashes.json")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"))
    ap.add_argument("--reference", help="the reference CNN's .pt (default: the cached mnist5k one)")
    ap.add_argument("--small", help="the small model's .pt, e.g. BASELINE/inputs/small.pt (default: a new one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare, args.json)
    if not args.out:
        ap.error("give OUT_DIR, or --compare A.json B.json")
    return produce(Path(args.out).resolve(), args.reference, args.small, args.json)


if __name__ == "__main__":
    sys.exit(main())
