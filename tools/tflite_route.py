"""Two routes from PyTorch to .tflite, measured on the same models: onnx2tf (today's) and litert-torch.

    python3 tools/tflite_route.py --setup             # makes .venv-litert from tools/litert-requirements.txt
    PYTHONPATH=$PWD /work/main/.venv/bin/python tools/tflite_route.py --out docs/results/tflite_route.jsonl
    PYTHONPATH=$PWD /work/main/.venv/bin/python tools/tflite_route.py --models resnet18 --routes litert-torch
    PYTHONPATH=$PWD /work/main/.venv/bin/python tools/tflite_route.py --table docs/results/tflite_route.jsonl

Routes, each conversion in its own child process (so its peak RSS is its own, from os.wait4):
  onnx2tf       the project's dense float32 path (export_dense_tflite: torch.onnx -> onnx2tf ->
                flatbuffer pass), in the main venv (TensorFlow 2.19, ai-edge-litert 2.1.0);
  litert-torch  litert_torch.convert(model, (x,)).export(path), in .venv-litert (no TensorFlow,
                ai-edge-litert 2.3.0).
Per model and route: converted or the error's first line, conversion seconds (the convert call
alone), the child's peak RSS and its RSS before converting, .tflite bytes, max |logit diff| /
max |torch logit| on 2 seeded inputs, builtin ops with their versions (and which exceed the
TFLite 2.16.1 table), LiteRT p50 (2 threads, 3 warm-ups, 20 runs) in the route's own venv and in
the other venv's LiteRT, and whether TF 2.16.1's interpreter (the Android app's runtime) loads and
agrees with the file. Models are built with seed 0 from the same torch/torchvision versions in
both venvs; the torch logits of both are compared too.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LITERT_VENV = ROOT / ".venv-litert"
LITERT_REQS = ROOT / "tools" / "litert-requirements.txt"
MAIN_PY = Path(os.environ.get("VQEXPORT_MAIN_PYTHON", sys.executable))
LITERT_PY = LITERT_VENV / "bin" / "python"
TF216_PY = Path(os.environ.get("VQEXPORT_TF216_PYTHON", "/work/main/.venv-tf216/bin/python"))
PIP = "24.3.1"


def setup(python: str) -> int:
    """Create .venv-litert with the pinned set; prints its installed size."""
    env = dict(os.environ, PIP_NO_CACHE_DIR="1")
    if not LITERT_PY.exists():
        subprocess.run([python, "-m", "venv", str(LITERT_VENV)], check=True)
    pip = [str(LITERT_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [f"pip=={PIP}"], check=True, env=env)
    subprocess.run(pip + ["-r", str(LITERT_REQS)], check=True, env=env)
    size = subprocess.run(["du", "-sh", str(LITERT_VENV)], capture_output=True, text=True).stdout.split()[0]
    print(f"{LITERT_VENV}: installed, {size}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", action="store_true", help="create .venv-litert and exit")
    p.add_argument("--python", default="python3", help="interpreter for --setup's venv (3.10-3.14)")
    a = p.parse_args(argv)
    if a.setup:
        return setup(a.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
