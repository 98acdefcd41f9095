"""Which TFLite builtin ops compute their output once, at AllocateTensors, when every input is constant?

    .venv/bin/python tools/tflite_prepare_probe.py                      # LiteRT (the pinned ai-edge-litert)
    .venv-tf216/bin/python tools/tflite_prepare_probe.py --runtime tf   # TF 2.16.1's interpreter
    .venv/bin/python tools/tflite_prepare_probe.py --bench              # what a prepare-time decode would buy

Why it matters (issue #4): a weight that a chain of such ops builds from constants is computed
once, when the interpreter is prepared, and then stays in memory as a read-only tensor that
FULLY_CONNECTED reads directly, with no per-invoke decode and no READ_VARIABLE copy. Each case
is a one-op model whose inputs are all constant; the output is read back after
allocate_tensors() and before any invoke: it holds the right values only if the kernel
evaluated it in Prepare.

--bench times one 4096x4096 FULLY_CONNECTED (batch 1, 2 threads, p50 of 50 after 5 warm-ups)
four ways, in one process: constant weights (XNNPACK packs them), constant weights with the
default delegates off (the builtin kernel), and weights produced at prepare time by
GATHER(codebook[16], int32 indices) (the best a prepare-time decode could do: unpacked
indices, so 4x the packed size), the last also with XNNPACK's newest features (which include
dynamic fully-connected weights). Ratios are against the first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqexport.formats.tflite import flatbuffer as tflite_rewrite
from vqexport.util.native_output import silenced


def one_op_model(op: str, inputs: list[np.ndarray], expect: np.ndarray, options=None) -> bytes:
    """A model whose only graph input feeds an unrelated ADD, so the probed op sees constants only."""
    s = tflite_rewrite.schema()
    m = s.ModelT()
    m.version, m.buffers, m.operatorCodes, m.subgraphs = 3, [s.BufferT()], [], []
    ed = tflite_rewrite.Editor(m)
    sg = ed.subgraph("main")
    consts = [ed.const(sg, f"in{i}", a) for i, a in enumerate(inputs)]
    x = ed.tensor(sg, "x", [1], "float32")
    out = ed.tensor(sg, "out", list(expect.shape), str(expect.dtype))
    kind = None if options is None else type(options).__name__[:-1]
    ed.op(sg, op, consts, [out], options, kind)
    y = ed.tensor(sg, "y", [1], "float32")
    ed.op(sg, "ADD", [x, x], [y], ed.options("AddOptions"), "AddOptions")
    ed.finish()
    g = m.subgraphs[sg]
    g.inputs, g.outputs = np.array([x], np.int32), np.array([out, y], np.int32)
    return tflite_rewrite.serialize(m)


def cases(ed_options):
    o = ed_options
    a = np.arange(1, 25, dtype=np.int32).reshape(4, 6) * 37
    b = np.full((1, 6), 5, np.int32)
    f = a.astype(np.float32) / 7
    u8 = (np.arange(24) * 11 % 256).astype(np.uint8).reshape(6, 4)
    return {
        "GATHER int32": ("GATHER", [a, np.array([2, 0], np.int32)], a[[2, 0]], o("GatherOptions", axis=0)),
        "GATHER float32, int16 positions": ("GATHER", [f, np.array([2, 0], np.int16)], f[[2, 0]],
                                            o("GatherOptions", axis=0)),
        "MUL int32": ("MUL", [a, b], a * b, o("MulOptions")),
        "RESHAPE": ("RESHAPE", [a, np.array([6, 4], np.int32)], a.reshape(6, 4), o("ReshapeOptions", newShape=[6, 4])),
        "CONCATENATION": ("CONCATENATION", [a, a], np.concatenate([a, a]), o("ConcatenationOptions", axis=0)),
        "TILE": ("TILE", [b, np.array([4, 1], np.int32)], np.tile(b, (4, 1)), o("TileOptions")),
        "STRIDED_SLICE": ("STRIDED_SLICE", [a, np.array([0, 1], np.int32), np.array([4, 5], np.int32),
                                            np.array([1, 2], np.int32)], a[0:4, 1:5:2], o("StridedSliceOptions")),
        "ADD int32": ("ADD", [a, b], a + b, o("AddOptions")),
        "SUB int32": ("SUB", [a, b], a - b, o("SubOptions")),
        "FLOOR_DIV int32": ("FLOOR_DIV", [a, b], a // b, o("FloorDivOptions")),
        "FLOOR_MOD int32": ("FLOOR_MOD", [a, b], a % b, o("FloorModOptions")),
        "RIGHT_SHIFT int32": ("RIGHT_SHIFT", [a, np.full((1, 6), 2, np.int32)], a >> 2, o("RightShiftOptions")),
        "BITWISE_XOR int32": ("BITWISE_XOR", [a, b], a ^ b, None),
        "CAST uint8->int32": ("CAST", [u8], u8.astype(np.int32), None),
        "BITCAST uint8->int32": ("BITCAST", [u8], u8.view(np.int32).reshape(6), None),
        "TRANSPOSE": ("TRANSPOSE", [a, np.array([1, 0], np.int32)], a.T.copy(), o("TransposeOptions")),
        "SLICE": ("SLICE", [a, np.array([1, 1], np.int32), np.array([2, 3], np.int32)], a[1:3, 1:4], o("SliceOptions")),
        "GATHER_ND": ("GATHER_ND", [a, np.array([[1, 2], [3, 4]], np.int32)], a[[1, 3], [2, 4]], None),
        "SELECT_V2": ("SELECT_V2", [a > 300, a, b], np.where(a > 300, a, b), None),
    }


def _fc_model(weight_from_gather: bool, n: int = 4096, seed: int = 0):
    """x[1, n] -> FULLY_CONNECTED -> [1, n]; the weight a constant, or GATHER(codebook, indices)."""
    rng = np.random.default_rng(seed)
    cb = np.sort(rng.standard_normal(16).astype(np.float32)) * np.float32(0.01)
    idx = rng.integers(0, 16, size=(n, n)).astype(np.int32)
    s = tflite_rewrite.schema()
    m = s.ModelT()
    m.version, m.buffers, m.operatorCodes, m.subgraphs = 3, [s.BufferT()], [], []
    ed = tflite_rewrite.Editor(m)
    sg = ed.subgraph("main")
    x = ed.tensor(sg, "x", [1, n], "float32")
    if weight_from_gather:
        w = ed.tensor(sg, "w", [n, n], "float32")
        ed.op(sg, "GATHER", [ed.const(sg, "cb", cb), ed.const(sg, "idx", idx)], [w],
              ed.options("GatherOptions", axis=0), "GatherOptions")
    else:
        w = ed.const(sg, "w", cb[idx])
    y = ed.tensor(sg, "y", [1, n], "float32")
    ed.op(sg, "FULLY_CONNECTED", [x, w, ed.const(sg, "bias", np.zeros(n, np.float32))], [y],
          ed.options("FullyConnectedOptions"), "FullyConnectedOptions")
    ed.finish()
    m.subgraphs[sg].inputs, m.subgraphs[sg].outputs = np.array([x], np.int32), np.array([y], np.int32)
    return tflite_rewrite.serialize(m), cb[idx]


def bench(runs: int = 50) -> dict:
    import time

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rows = {}
    cases = (("dense, XNNPACK", False, {}),
             ("dense, builtin kernel", False,
              {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}),
             ("GATHER at prepare time", True, {}),
             ("same, XNNPACK latest", True, {"experimental_default_delegate_latest_features": True}))
    x = np.random.default_rng(1).standard_normal((1, 4096)).astype(np.float32)
    for name, gather, kwargs in cases:
        data, w = _fc_model(gather)
        with silenced():  # LiteRT's delegate banner and flag deprecation lines
            it = Interpreter(model_content=data, num_threads=2, **kwargs)
            it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        for _ in range(5):
            it.invoke()
        # the weights must be the intended ones, whichever way they were made
        got = it.get_tensor(it.get_output_details()[0]["index"])
        assert np.allclose(got, x @ w.T, atol=1e-4), name
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            it.invoke()
            times.append(time.perf_counter() - t0)
        rows[name] = round(float(np.median(times)) * 1e3, 3)
    base = rows["dense, XNNPACK"]
    return {k: {"p50_ms": v, "x_dense": round(v / base, 2)} for k, v in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", choices=["litert", "tf"], default="litert",
                   help="litert: ai_edge_litert's Interpreter; tf: tensorflow.lite's (e.g. TF 2.16.1)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--bench", action="store_true", help="time a 4096x4096 layer four ways (LiteRT)")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if a.bench:
        rows = bench()
        if a.json:
            print(json.dumps(rows, indent=1))
        else:
            for name, r in rows.items():
                print(f"  {name:24s} p50 {r['p50_ms']:.3f} ms  = {r['x_dense']:.2f}x dense")
        return 0
    if a.runtime == "litert":
        from importlib.metadata import version as dist_version

        from ai_edge_litert.interpreter import Interpreter
        version = dist_version("ai-edge-litert")
    else:
        import tensorflow as tf
        from tensorflow.lite.python.interpreter import Interpreter
        version = tf.__version__
    ed = tflite_rewrite.Editor(None)
    rows = {}
    for name, (op, inputs, expect, options) in cases(ed.options).items():
        it = Interpreter(model_content=one_op_model(op, inputs, expect, options))
        it.allocate_tensors()
        out = next(d["index"] for d in it.get_output_details() if d["name"] == "out")
        at_prepare = bool(np.array_equal(it.get_tensor(out), expect))
        it.set_tensor(it.get_input_details()[0]["index"], np.ones(1, np.float32))
        it.invoke()
        rows[name] = {"at_prepare": at_prepare, "correct": bool(np.array_equal(it.get_tensor(out), expect))}
    if a.json:
        print(json.dumps({"runtime": a.runtime, "version": version, "ops": rows}, indent=1))
    else:
        print(f"{a.runtime} {version}: output computed at allocate_tensors() when all inputs are constant")
        for name, r in rows.items():
            after = "right" if r["correct"] else "WRONG"
            print(f"  {name:34s} {'yes' if r['at_prepare'] else 'no ':4s} (after invoke: {after})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
