"""Run .tflite files in another TFLite runtime (e.g. TF 2.16.1 in its own venv) and print their outputs.

    python tflite_runcheck.py inputs.npy out.npz model1.tflite [model2.tflite ...]

inputs.npy holds a batch [N, ...] in the models' input layout; each model runs them one at a
time (num_threads=2) and out.npz gets one [N, ...] array per model, keyed by position. It
imports only numpy and tensorflow (or ai_edge_litert), so any runtime's environment can run it.
"""
from __future__ import annotations

import sys

import numpy as np


def main(argv) -> int:
    try:
        import tensorflow as tf

        interpreter = tf.lite.Interpreter
    except ImportError:
        from ai_edge_litert.interpreter import Interpreter as interpreter
    inputs = np.load(argv[0])
    results = {}
    for i, path in enumerate(argv[2:]):
        it = interpreter(model_path=path, num_threads=2)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        it.resize_tensor_input(inp["index"], [1, *inputs.shape[1:]])
        it.allocate_tensors()
        rows = []
        for x in inputs:
            it.set_tensor(inp["index"], x[None].astype(np.float32))
            it.invoke()
            rows.append(it.get_tensor(out["index"])[0].copy())
        results[str(i)] = np.stack(rows)
    np.savez(argv[1], **results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
