"""TFLite export that keeps the compressed weights compressed and decodes them with builtin ops.

Route: PyTorch -> litert-torch (convert.py) -> float32 .tflite -> flatbuffer rewrite.

Finding the weights. Every compressed weight is given to the converter as a graph input (the
module runs with torch.func.functional_call), not as a constant: the converter cannot fold
anything into it (a BatchNorm into the conv before it, a layer scale into the Linear before it),
and input i + 1 is the i-th weight, so no weight is searched for. A TRANSPOSE or RESHAPE that the
converter put between such an input and its one consumer (a conv's OIHW filter made OHWI, a
depthwise filter made 1HWO, a 1x1 filter made 2-D) is dropped and becomes the weight's layout.

The rewrite takes each weight's input away and feeds its tensor from the compressed payload
by a decode chain (decode.py):
  decode="once"       the chain runs in an initialisation subgraph that CALL_ONCE runs on the
                      first invoke; it stores W in a resource variable (VAR_HANDLE +
                      ASSIGN_VARIABLE) and the main graph reads it (READ_VARIABLE) each invoke.
  decode="every-run"  the chain runs in the main graph before the first op, on every invoke.
  decode="load"       no chain: the weight becomes a constant whose bytes the loader decodes
                      before building the interpreter (external.py), so XNNPACK packs
                      it like a dense weight. Needs vqexport's loader or the demo app's.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np

from ...errors import ConfigError, VqexportError
from ...layouts import channels_first, is_channels_last, layout_name, to_last
from ...torch_bridge import rebound, to_torch
from ...util.fileio import atomic_path
from ...util.progress import layer_bar, stage
from .. import HalfPrecisionNote
from . import convert, external, flatbuffer
from .decode import FOLLOWS_ANY_ORDER
from .decode import build as build_decode

DECODE_MODES = ("once", "every-run", "load")
# Buffer offset/size (decode="load") is tested in TF 2.16.1 and LiteRT 2.1; older runtimes are not.
LOAD_MIN_RUNTIME = "2.16.1"
SIZE_SLACK = 1.02
SIZE_EXTRA = 16 * 1024


class ConvDecodeNote(UserWarning):
    """Conv filters decoded by the graph: correct, but not on XNNPACK."""


class TfliteExportError(VqexportError):
    """The model could not be converted to, or rewritten as, a TFLite model."""


# -- public API ----------------------------------------------------------------------------------
def export_tflite(compressed, path, model=None, decode: str = "once", *, input_shape=None,
                  quiet: bool = True, index_coding: str | None = None) -> dict:
    """Write `compressed` as a .tflite whose compressed weights stay compressed; returns a report.

    model: the LoadedModel / nn.Module the weights belong to (default: the architecture the
    metadata names). decode: "once" (default), "every-run" or "load" (see the module doc).
    input_shape: NCHW shape when the model has no input spec. index_coding: how the .vqm that a
    decode="load" file carries stores its indices ("auto", the default there, or "packed"); the
    other modes decode in the graph, with builtin ops, from plain packed indices, so it is an error
    there.
    The report holds path, bytes, ideal_bytes (cm.ideal_bits()/8), bound_bytes, within_bound,
    decode, min_runtime_version, ops, and per-layer info. quiet=False shows progress on stderr.
    """
    if decode not in DECODE_MODES:
        raise ConfigError(f"decode must be one of {', '.join(DECODE_MODES)}, got {decode!r}")
    if index_coding is not None and decode != "load":
        raise ConfigError(f"--index-coding has no effect with --decode {decode}: its graph decodes plain packed "
                          "indices; only --decode load carries a .vqm")
    comp = compressed.compressed
    if not comp:
        raise ConfigError("nothing is compressed in this model; use export_dense_tflite for a dense .tflite")
    convs = [t.name for t in comp if len(t.shape) > 2]
    if convs and decode != "load":
        # Measured (docs/results/tflite.md): TFLite 2.16.1 and LiteRT run a conv whose filter is
        # computed at run time, but XNNPACK does not take it, so such a conv runs 2-6x slower.
        warnings.warn(f"{len(convs)} conv filters are decoded by the graph (--decode {decode}); XNNPACK runs "
                      "convs only with constant filters, so they run on TFLite's slower builtin kernels: "
                      "--decode load keeps the dense model's speed", ConvDecodeNote, stacklevel=2)
    spec = _input_spec(compressed.metadata.get("input") or getattr(model, "input", None), input_shape)
    src = getattr(model, "module", model)
    if _is_torchscript(src):
        # Converted as it is, then given cm's tensors: a copy of a TorchScript module copies every
        # weight (VGG-16: 0.5 GB), and torch's TorchScript-to-export conversion shares them.
        module = rebound(convert.from_torchscript(src, spec["shape"]), compressed)
    else:
        module = to_torch(compressed, model, quiet=quiet, share_raw=True, placeholders=True)  # the weights are inputs
    names = [t.name for t in comp]
    with stage(f"converting PyTorch -> TFLite ({convert.ROUTE})", quiet):
        tfl = flatbuffer.read_model(convert.to_flatbuffer(module, spec["shape"], lifted=names))
    convert.short_names(tfl)
    ed = flatbuffer.Editor(tfl)
    targets = _weight_inputs(tfl, comp)
    missed = _store_half(tfl, ed, compressed)
    bar = layer_bar([(t.name, t.numel) for t in comp], quiet, "decode graph")
    layers, slots = _rewrite(tfl, ed, {t.name: t for t in comp}, targets, decode, bar)
    bar.close()
    ed.finish()
    if slots:
        external.embed(ed, compressed, [s["layer"] for s in slots], index_coding or "auto")
    report = _finish_model(tfl, ed, compressed.metadata, spec, decode, layers, slots)
    data, area = external.place(tfl, slots) if slots else (flatbuffer.serialize(tfl), 0)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    ideal = compressed.ideal_bits() / 8
    bound = SIZE_SLACK * ideal + SIZE_EXTRA
    return {"path": str(path), "bytes": len(data), "ideal_bytes": ideal, "bound_bytes": bound,
            "within_bound": len(data) <= bound, "decode": decode, **report, "layers": layers,
            "widened_missed": missed,
            "load_area_bytes": area}


def export_dense_tflite(model, path, input_spec=None, *, labels=None) -> dict:
    """Write the uncompressed model as a float32 .tflite (the baseline), with the same metadata entry.

    input_spec: {"shape": [1, C, H, W], "mean", "std"} or just the NCHW shape; defaults to the
    LoadedModel's own spec.
    """
    from ...load import LoadedModel

    loaded = model if isinstance(model, LoadedModel) else None
    module = getattr(model, "module", model)
    if input_spec is None and loaded is not None:
        input_spec = loaded.input
    spec = _input_spec(input_spec if isinstance(input_spec, dict) else None,
                       None if isinstance(input_spec, dict) else input_spec)
    tfl = flatbuffer.read_model(convert.to_flatbuffer(copy.deepcopy(module).eval(), spec["shape"]))
    convert.short_names(tfl)
    ed = flatbuffer.Editor(tfl)
    meta = {"labels": labels if labels is not None else (loaded.labels if loaded else None)}
    if loaded is not None:
        meta["source"] = loaded.source_metadata()
    report = _finish_model(tfl, ed, meta, spec, None, {})
    data = flatbuffer.serialize(tfl)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return {"path": str(path), "bytes": len(data), **report}


# -- input spec ----------------------------------------------------------------------------------
def _is_torchscript(module) -> bool:
    import torch

    return isinstance(module, torch.jit.ScriptModule)


def _input_spec(spec, input_shape) -> dict:
    spec = dict(spec or {})
    if input_shape is not None:
        spec["shape"] = [int(v) for v in input_shape]
        spec["layout"] = channels_first(len(spec["shape"]))
    if not spec.get("shape"):
        raise ConfigError("the model's input shape is unknown: pass input_shape=(1, C, H, W)")
    shape = [int(v) for v in spec["shape"]]
    if any(v < 1 for v in shape):
        raise ConfigError(f"input shape must be positive, got {shape}")
    spec["shape"] = shape
    return spec


# -- rewrite -------------------------------------------------------------------------------------
def _weight_inputs(tfl, tensors) -> dict:
    """{(0, tensor): (layer, order)}: the tensor each compressed weight feeds, and how the converter
    laid out its elements there: None (as in torch), a tuple of axes (transposed), or an array whose
    element j is the torch weight's element (row-major) at position j of the tensor. The weights are
    the main graph's inputs 1, 2, ... (convert.to_flatbuffer); each leaves the inputs and the
    signature. Arrays are made only where a RESHAPE changes the shape or follows a TRANSPOSE (conv
    filters): a Linear weight of 100 M elements gets None, not 800 MB of positions."""
    g = tfl.subgraphs[0]
    inputs = [int(i) for i in g.inputs]
    if len(inputs) != 1 + len(tensors):
        raise TfliteExportError(f"{convert.ROUTE} made {len(inputs)} inputs of the model's 1 and its "
                                f"{len(tensors)} weights")
    names = flatbuffer.op_names()
    users: dict[int, list[int]] = {}
    for k, op in enumerate(g.operators):
        for i in op.inputs:
            users.setdefault(int(i), []).append(k)
    outputs, dropped, targets = {int(i) for i in g.outputs}, set(), {}
    for t, ti in zip(tensors, inputs[1:], strict=True):
        got = [int(v) for v in g.tensors[ti].shape]
        if got != list(t.shape):
            raise TfliteExportError(f"layer {t.name}: {convert.ROUTE} made its weight input {got}, not {list(t.shape)}")
        axes, order, at = tuple(range(len(t.shape))), None, ti
        while len(users.get(at, [])) == 1 and at not in outputs:
            k = users[at][0]
            op = g.operators[k]
            kind = names.get(flatbuffer.builtin_code(tfl.operatorCodes[op.opcodeIndex]))
            if int(op.inputs[0]) != at or kind not in ("TRANSPOSE", "RESHAPE"):
                break
            out = int(op.outputs[0])
            shape = [int(v) for v in g.tensors[out].shape]
            # A reshape to another rank (a Conv1d's filter made 2-D conv form) stays in the graph: the
            # loaders fill a slot by an axis order of the weight, which a change of rank is not.
            if math.prod(shape) != t.numel or (kind == "RESHAPE" and len(shape) != len(got)):
                break
            if kind == "TRANSPOSE":
                perm = _constant(tfl, g, int(op.inputs[1]))
                if perm is None or sorted(perm.tolist()) != list(range(len(got))):
                    break
                if order is None:
                    axes = tuple(axes[p] for p in perm.tolist())
                else:
                    order = order.transpose(perm.tolist())
            elif order is not None or axes != tuple(range(len(axes))) or shape != list(t.shape):
                if order is None:  # positions from here on: a reshape is not an axis order of the weight
                    dtype = np.int32 if t.numel < 2**31 else np.int64
                    order = np.arange(t.numel, dtype=dtype).reshape(t.shape).transpose(axes)
                order = order.reshape(shape)
            dropped.add(k)
            at, got = out, shape
        layout = None if order is None and axes == tuple(range(len(axes))) else axes if order is None else order.ravel()
        targets[(0, at)] = (t.name, layout)
    g.operators = [op for k, op in enumerate(g.operators) if k not in dropped]
    g.inputs = np.array(inputs[:1], dtype=np.int32)
    for sig in tfl.signatureDefs or []:
        sig.inputs = [item for item in sig.inputs if int(item.tensorIndex) not in inputs[1:]]
    # the weight inputs and the dropped ops' tensors: about 100 bytes each, which a model of many small
    # layers (SqueezeNet) cannot spare within the size bound
    remap = flatbuffer.drop_unused_tensors(tfl, 0, keep=[ti for _, ti in targets])
    return {(0, remap[ti]): hit for (_, ti), hit in targets.items()}


def _constant(tfl, g, ti: int):
    """An int32 constant tensor's values, or None."""
    t = g.tensors[ti]
    data = tfl.buffers[t.buffer].data if t.buffer else None
    if data is None or int(t.type) != int(flatbuffer.schema().TensorType.INT32):
        return None
    return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype="<i4")


def _take_constants(tfl, arrays: dict):
    """Yield (subgraph, tensor, names, axes) for each float32 constant that holds one of `arrays`
    (name: N-D float32 values) in some axis order (a conv's OIHW filter comes out OHWI), its buffer
    taken away for the caller to feed the tensor instead. names: every array with those values
    (equal tensors, such as zero biases, the converter may have stored once)."""
    wanted = {}
    for name, values in arrays.items():
        for axes in itertools.permutations(range(values.ndim)):
            laid = np.ascontiguousarray(values.transpose(axes), dtype="<f4").tobytes()
            names, _ = wanted.setdefault(laid, ([], axes))
            if name not in names:
                names.append(name)
    sizes = {4 * v.size for v in arrays.values()}  # no bytes copied of a buffer that cannot match
    float32 = int(flatbuffer.schema().TensorType.FLOAT32)
    for si, g in enumerate(tfl.subgraphs):
        for ti, tensor in enumerate(g.tensors):
            data = tfl.buffers[tensor.buffer].data if tensor.buffer else None
            if data is None or len(data) not in sizes or int(tensor.type) != float32:
                continue
            hit = wanted.get(np.asarray(data, dtype=np.uint8).tobytes())
            if hit is not None:
                tfl.buffers[tensor.buffer].data = None
                tensor.buffer = 0
                yield si, ti, hit[0], hit[1]


def _store_half(tfl, ed, cm) -> list[str]:
    """Each raw tensor stored in half precision (--raw-dtype float16) whose float32 values the
    converter kept as one constant becomes a float16 constant and a DEQUANTIZE (TFLite's own
    float16 weights, which XNNPACK takes as constants); returns the names not found as such."""
    widened = cm.metadata.get("widened") or []
    halves = {n: np.asarray(cm[n].sections["raw"].data, dtype=np.float16).reshape(cm[n].shape) for n in widened}
    found = set()
    for si, ti, names, axes in _take_constants(tfl, {n: h.astype(np.float32) for n, h in halves.items()}):
        shape = [int(v) for v in tfl.subgraphs[si].tensors[ti].shape]
        small = ed.tensor(si, f"{names[0]}/float16", shape, "float16", halves[names[0]].transpose(axes).reshape(shape))
        ed.op(si, "DEQUANTIZE", [small], [ti], version=3)
        found.update(names)
    missed = [n for n in widened if n not in found]
    if missed:
        warnings.warn(f"{len(missed)} raw tensors stay float32 in the .tflite (the converter changed their "
                      f"values, e.g. fused them): {', '.join(missed[:6])}", HalfPrecisionNote, stacklevel=3)
    return missed


def _rewrite(tfl, ed, tensors: dict, targets: dict, decode: str, bar) -> tuple[dict, list[dict]]:
    init_sg = ed.subgraph("vqexport_decode_once") if decode == "once" else None
    if init_sg is not None:
        ed.op(0, "CALL_ONCE", [], [], ed.options("CallOnceOptions", initSubgraphIndex=init_sg), "CallOnceOptions")
    layers, at_load = {}, {}
    for k, ((si, ti), (name, order)) in enumerate(sorted(targets.items())):
        t = tensors[name]
        info = layers.setdefault(name, {"method": t.method, "shape": list(t.shape), "ideal_bytes": t.ideal_bits / 8,
                                        "stored_bytes": 0, "decode_ops": 0, "layout": []})
        shape = [int(v) for v in tfl.subgraphs[si].tensors[ti].shape]
        layout = _layout(order, shape, t.shape)
        if isinstance(layout, np.ndarray) and t.method not in FOLLOWS_ANY_ORDER:
            raise TfliteExportError(f"layer {name}: the converter reordered its weight {shape}; "
                                    f"{t.method} can only follow a kept, transposed or axis-permuted weight")
        info["layout"].append(slot_layout(layout))
        if decode == "load":
            axes = external.slot_axes(info["layout"][-1], len(t.shape))
            if axes is None or [t.shape[a] for a in axes] != shape:
                raise TfliteExportError(f"layer {name}: the converter laid its weight out as {shape} in an order the "
                                        "loaders cannot fill (not an axis order of it); use --decode once")
            at_load[(si, ti)] = (name, info["layout"][-1])
            info["stored_bytes"] += sum(sec.nbytes for sec in t.sections.values())
            bar.done(name)
            continue
        # A short prefix: the chains' tensor names add up on a model of many small layers (SqueezeNet:
        # 220 decode tensors); the metadata's layers[name]["decode_prefix"] says which layer it is.
        prefix = f"vq{k}"
        info.setdefault("decode_prefix", []).append(prefix)
        before = len(tfl.buffers)
        if decode == "every-run":
            _, ops = build_decode(ed, si, t, shape, layout, ti, prefix)
        else:
            w, ops = build_decode(ed, init_sg, t, shape, layout, None, prefix)
            var = prefix
            hi = ed.tensor(init_sg, prefix + "/handle", [], "resource")
            ed.op(init_sg, "VAR_HANDLE", [], [hi], ed.options("VarHandleOptions", container=b"",
                                                               sharedName=var.encode()), "VarHandleOptions")
            ed.op(init_sg, "ASSIGN_VARIABLE", [hi, w], [])
            hm = ed.tensor(si, prefix + "/handle", [], "resource")
            ed.op(si, "VAR_HANDLE", [], [hm], ed.options("VarHandleOptions", container=b"",
                                                          sharedName=var.encode()), "VarHandleOptions")
            ed.op(si, "READ_VARIABLE", [hm], [ti])
            ops += 3
        info["stored_bytes"] += sum(len(b.data) for b in tfl.buffers[before:] if b.data is not None)
        info["decode_ops"] += ops
        bar.done(name)
    return layers, external.attach(tfl, ed, at_load, tensors) if at_load else []


def _layout(order, shape, source_shape):
    """How the converter laid the weight out: "W" (as in torch), "WT" (a 2-D weight transposed), a
    tuple of axes (the N-D weight transposed by them: a conv's OIHW filter as OHWI), or, for
    anything else, the permutation of the elements itself. `order` is what _weight_inputs found.
    A layout that fits the tensor's shape is preferred: the loaders fill a slot by axes."""
    source_shape, shape = [int(v) for v in source_shape], [int(v) for v in shape]

    def named(axes):
        if axes == tuple(range(len(source_shape))):
            return "W"
        return "WT" if len(source_shape) == 2 and axes == (1, 0) else axes

    if order is None:  # kept as it is, in torch's shape
        return "W"
    if isinstance(order, tuple):
        return named(order)
    fits = [a for a in itertools.permutations(range(len(source_shape))) if [source_shape[i] for i in a] == shape]
    identity = np.arange(order.size).reshape(source_shape)
    for axes in fits:
        if np.array_equal(order, identity.transpose(axes).ravel()):
            return named(axes)
    return "W" if np.array_equal(order, identity.ravel()) else order


def slot_layout(layout) -> str:
    """As the metadata and the loaders spell it: W, WT, axes:0,2,3,1, or permuted."""
    if isinstance(layout, str):
        return layout
    return "axes:" + ",".join(map(str, layout)) if isinstance(layout, tuple) else "permuted"


def _finish_model(tfl, ed, meta: dict, spec: dict, decode, layers, slots=None) -> dict:
    flatbuffer.lower_op_versions(tfl)
    bad = flatbuffer.unsupported_ops(tfl)
    if bad:
        raise TfliteExportError("the .tflite needs ops that TFLite 2.16.1 lacks: " + "; ".join(bad))
    main = tfl.subgraphs[0]
    inputs = [main.tensors[i] for i in main.inputs]
    in_shape = [int(v) for v in inputs[0].shape] if inputs else spec["shape"]
    layout = _converted_layout(in_shape, spec["shape"])
    payload = {
        "format": "tflite",
        "producer": meta.get("producer") or _producer(),
        "input": {"shape": in_shape, "layout": layout, "mean": spec.get("mean"), "std": spec.get("std"),
                  "source_shape": spec["shape"], "source_layout": _source_layout(spec)},
        "labels": meta.get("labels"),
        "source": meta.get("source"),
        "config": meta.get("config"),
        "summary": meta.get("summary"),
        "decode": decode,
        "layers": layers,
    }
    if slots:
        payload["slots"] = slots
    ed.set_metadata(flatbuffer.METADATA_NAME, json.dumps(payload, sort_keys=True).encode())
    runtime = flatbuffer.set_min_runtime_version(tfl, ed, LOAD_MIN_RUNTIME if slots else "1.5.0")
    return {"min_runtime_version": runtime, "ops": [f"{n}/v{v}" for n, v in flatbuffer.used_ops(tfl)],
            "input": payload["input"]}


def _source_layout(spec) -> str:
    rank = len(spec["shape"])
    return spec["layout"] if is_channels_last(spec.get("layout"), rank) is not None else channels_first(rank)


def _converted_layout(in_shape, source_shape) -> str:
    """The layout of the .tflite's input: the converter was asked for channels last at ranks 3 to 5
    (convert.channels_last); the shape it gave must be that order of the PyTorch one."""
    rank, src = len(in_shape), [int(v) for v in source_shape]
    last = convert.channels_last(rank)
    if len(src) != rank or in_shape != (to_last(src) if last else src):
        raise TfliteExportError(f"{convert.ROUTE} turned the input {src} into {in_shape}, not its "
                                f"{layout_name(rank, last)} order")
    return layout_name(rank, last)


def _producer() -> str:
    from ...version import __version__

    return f"vqexport {__version__}"
