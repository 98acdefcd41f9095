"""Measure which builtin op versions a TFLite runtime resolves: regenerates tflite_op_versions.json.

For every builtin operator code and version 1..MAX_PROBE we build a model whose only content
is that operator code, and ask the runtime's interpreter to load it. The interpreter's builtin op
resolver (tensorflow/lite/core/kernels/register.cc) rejects an operator code it has no kernel
for, so the highest version that loads is the runtime's maximum for that op.

Run with the Python of an environment that has the runtime to measure, e.g.

    python -m venv /tmp/tf216 && /tmp/tf216/bin/pip install tensorflow-cpu==2.16.1 "numpy<2"
    /tmp/tf216/bin/python tools/tflite_probe.py > table.json

It only imports tensorflow (or ai_edge_litert) and flatbuffers, never vqexport.
"""
from __future__ import annotations

import json
import sys

MAX_PROBE = 20


def _model_bytes(schema, flatbuffers, code: int, version: int) -> bytes:
    m = schema.ModelT()
    m.version = 3
    oc = schema.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    oc.version = version
    m.operatorCodes = [oc]
    sg = schema.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = [], [], [], []
    m.subgraphs = [sg]
    m.buffers = [schema.BufferT()]
    b = flatbuffers.Builder(256)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def probe() -> dict:
    import flatbuffers

    try:
        import tensorflow as tf
        from tensorflow.lite.python import schema_py_generated as schema

        interpreter, runtime = tf.lite.Interpreter, f"tensorflow {tf.__version__}"
    except ImportError:  # a LiteRT-only environment
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter as interpreter
        from tensorflow.lite.python import schema_py_generated as schema

        runtime = f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}"
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    table = {}
    for code in sorted(names):
        best = 0
        for version in range(1, MAX_PROBE + 1):
            try:
                interpreter(model_content=_model_bytes(schema, flatbuffers, code, version))
            except (ValueError, RuntimeError):
                continue
            best = version
        if best:
            table[names[code]] = best
    return {"runtime": runtime, "max_version": table}


if __name__ == "__main__":
    json.dump(probe(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
