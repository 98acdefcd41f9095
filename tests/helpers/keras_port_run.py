"""Build tools/anchors/keras_port.py's Keras model and run it, in a venv with tf_keras (the TF 2.16.1 one).

    python keras_port_run.py case.json case.npz out.npz

case.json: {"layers": describe_torch's layers, "chw": [C, H, W], "wrong": the index of a Dense layer
whose from_map is cleared for a second model}. case.npz: describe_torch's weights and "__x__", the
inputs in NHWC. out.npz: "right" and "wrong", the two models' logits. It imports numpy, tf_keras
and keras_port only, never torch or vqexport.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main(argv) -> int:
    spec = importlib.util.spec_from_file_location("keras_port", ROOT / "tools" / "anchors" / "keras_port.py")
    port = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(port)
    case = json.loads(Path(argv[0]).read_text())
    arrays = dict(np.load(argv[1]))
    x = arrays.pop("__x__")
    layers, chw = case["layers"], tuple(case["chw"])
    right = port.build_keras(layers, arrays, chw).predict(x, verbose=0)
    layers[case["wrong"]] = dict(layers[case["wrong"]], from_map=None)
    wrong = port.build_keras(layers, arrays, chw).predict(x, verbose=0)
    np.savez(argv[2], right=right, wrong=wrong)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
