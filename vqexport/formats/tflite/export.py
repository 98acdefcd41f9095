"""TFLite export that keeps the compressed weights compressed and decodes them with builtin ops.

Route: PyTorch -> litert-torch (convert.py) -> float32 .tflite -> flatbuffer rewrite.

Finding the weights. Before the conversion every compressed 2-D weight is replaced by a *probe*:
element i of layer l holds the float32 whose bit pattern is PROBE_BASE + offset_l + i (all
normal, finite, distinct numbers in [1e-19, 2)). In the converted flatbuffer, a constant whose
values are exactly one layer's probe is that layer's weight, and the values say where each
element went (kept, or transposed). No tolerance, no guessing by shape. Conv filters keep their
decoded values and are found by them in any axis order (OIHW comes out OHWI, or 1HWO for a
depthwise conv). A weight the converter folded into another constant is not found and the export
fails naming it.

The rewrite takes each weight's constant away and feeds the tensor from the compressed payload
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
from ...methods.registry import decode as decode_weight
from ...torch_bridge import to_torch
from ...util.fileio import atomic_path
from ...util.progress import layer_bar, stage
from .. import HalfPrecisionNote
from . import convert, external, flatbuffer
from .decode import FOLLOWS_ANY_ORDER
from .decode import build as build_decode

DECODE_MODES = ("once", "every-run", "load")
# Buffer offset/size (decode="load") is tested in TF 2.16.1 and LiteRT 2.1; older runtimes are not.
LOAD_MIN_RUNTIME = "2.16.1"
PROBE_BASE = 0x20000000  # float32 1.08e-19; PROBE_BASE + 2**29 is 2.0
PROBE_SPAN = 1 << 29
SIZE_SLACK = 1.02
SIZE_EXTRA = 16 * 1024


class ConvDecodeNote(UserWarning):
    """Conv filters decoded by the graph: correct, but not on XNNPACK."""


class TfliteExportError(VqexportError):
    """The model could not be converted to, or rewritten as, a TFLite model."""


# -- public API ----------------------------------------------------------------------------------
def export_tflite(compressed, path, model=None, decode: str = "once", *, input_shape=None,
                  quiet: bool = True) -> dict:
    """Write `compressed` as a .tflite whose compressed weights stay compressed; returns a report.

    model: the LoadedModel / nn.Module the weights belong to (default: the architecture the
    metadata names). decode: "once" (default), "every-run" or "load" (see the module doc).
    input_shape: NCHW shape when the model has no input spec.
    The report holds path, bytes, ideal_bytes (cm.ideal_bits()/8), bound_bytes, within_bound,
    decode, min_runtime_version, ops, and per-layer info. quiet=False shows progress on stderr.
    """
    if decode not in DECODE_MODES:
        raise ConfigError(f"decode must be one of {', '.join(DECODE_MODES)}, got {decode!r}")
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
    module = to_torch(compressed, model, quiet=quiet, share_raw=True)
    # Conv filters keep their decoded values and are found by them after the conversion; the
    # 2-D weights get probes, which also tell a transposed weight from a kept one.
    flat_comp = [t for t in comp if len(t.shape) == 2]
    probes = _set_probes(module, flat_comp)
    with stage(f"converting PyTorch -> TFLite ({convert.ROUTE})", quiet):
        tfl = flatbuffer.read_model(convert.to_flatbuffer(module, spec["shape"]))
    convert.short_names(tfl)
    ed = flatbuffer.Editor(tfl)
    targets = _targets(tfl, probes)
    targets.update(_filters_by_value(tfl, [t for t in comp if len(t.shape) != 2]))
    missed = _store_half(tfl, ed, compressed)
    bar = layer_bar([(t.name, t.numel) for t in comp], quiet, "decode graph")
    layers, slots = _rewrite(tfl, ed, {t.name: t for t in comp}, targets, decode, bar)
    bar.close()
    ed.finish()
    if slots:
        external.embed(ed, compressed, [s["layer"] for s in slots])
    report = _finish_model(tfl, ed, compressed.metadata, spec, decode, layers, slots)
    data, area = external.place(tfl, slots) if slots else (flatbuffer.serialize(tfl), 0)
    _leftover_probes(data, probes)
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


# -- probes --------------------------------------------------------------------------------------
def _set_probes(module, comp) -> dict:
    import torch

    params = dict(module.named_parameters())
    params.update(dict(module.named_buffers()))
    probes, offset = {}, 0
    for t in comp:
        if t.name not in params:
            raise TfliteExportError(f"layer {t.name}: not a parameter of the model")
        if offset + t.numel > PROBE_SPAN:
            raise TfliteExportError("the compressed layers hold more than 2**29 weights; too large to export")
        bits = (np.arange(t.numel, dtype=np.int64) + PROBE_BASE + offset).astype(np.int32)
        value = torch.from_numpy(bits.view(np.float32).reshape(t.shape).copy())
        with torch.no_grad():  # rebound, not written into: a raw weight shares its memory with the IR
            params[t.name].data = value
        probes[t.name] = (offset, t.numel)
        offset += t.numel
    return probes


class _Shape:
    """What _set_probes needs of a tensor: a name, a shape, an element count."""

    def __init__(self, name, shape):
        self.name, self.shape = name, shape
        self.numel = int(np.prod(shape))


def _probe_hit(words: np.ndarray, probes: dict):
    """(layer name, perm) when float32 array `words` holds exactly one layer's probe values, else None."""
    words = np.ascontiguousarray(words, dtype=np.float32).ravel().view("<i4").astype(np.int64) - PROBE_BASE
    if words.size == 0:
        return None
    for name, (offset, count) in probes.items():
        if count != words.size or not offset <= words[0] < offset + count:
            continue
        perm = words - offset
        if perm.min() < 0 or perm.max() >= count:
            return None
        seen = np.zeros(count, dtype=bool)
        seen[perm] = True
        return (name, perm) if seen.all() else None
    return None


def _leftover_probes(data: bytes, probes: dict) -> None:
    """Fail if any probe value reached the .tflite (a weight the rewrite did not reach)."""
    for name, (offset, count) in probes.items():
        needle = np.array([PROBE_BASE + offset + i for i in range(min(4, count))], dtype="<i4").tobytes()
        if needle in data:
            raise TfliteExportError(f"layer {name}: a copy of its weight was left dense in the .tflite")


# -- rewrite -------------------------------------------------------------------------------------
def _targets(tfl, probes: dict) -> dict:
    """{(subgraph, tensor): (layer, perm)}: each constant that holds a probed weight, in whatever
    layout the converter chose; each loses its dense buffer (the decode or the loader fills it)."""
    targets, found = {}, set()
    sizes = {4 * count for _, count in probes.values()}  # no bytes copied of a buffer that cannot match
    for si, g in enumerate(tfl.subgraphs):
        for ti, tensor in enumerate(g.tensors):
            data = tfl.buffers[tensor.buffer].data if tensor.buffer else None
            if data is None or len(data) not in sizes:
                continue
            hit = _probe_hit(np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype="<f4"), probes)
            if hit is not None and hit[0] not in found:
                targets[(si, ti)] = hit
                found.add(hit[0])
                tfl.buffers[tensor.buffer].data = None
                tensor.buffer = 0
    missing = [n for n in probes if n not in {layer for layer, _ in targets.values()}]
    if missing:
        raise TfliteExportError(f"layer {missing[0]}: the converted model does not keep its weight as one tensor "
                                "(folded into another op?); it cannot be stored compressed")
    return targets


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


def _filters_by_value(tfl, tensors) -> dict:
    """{(subgraph, tensor): (layer, perm)} for N-D weights kept as constants with their decoded
    values, in any axis order; the decode (or the loader) fills each."""
    shapes = {t.name: t.shape for t in tensors}
    targets = {}
    for si, ti, names, axes in _take_constants(tfl, {t.name: decode_weight(t).astype(np.float32) for t in tensors}):
        targets[(si, ti)] = (names[0], np.arange(math.prod(shapes[names[0]])).reshape(shapes[names[0]])
                             .transpose(axes).ravel())
    missing = [t.name for t in tensors if t.name not in {name for name, _ in targets.values()}]
    if missing:
        raise TfliteExportError(f"layer {missing[0]}: the converted model does not keep its weight as one tensor "
                                "(folded into another op?); it cannot be stored compressed")
    return targets


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
    for k, ((si, ti), (name, perm)) in enumerate(sorted(targets.items())):
        t = tensors[name]
        info = layers.setdefault(name, {"method": t.method, "shape": list(t.shape), "ideal_bytes": t.ideal_bits / 8,
                                        "stored_bytes": 0, "decode_ops": 0, "layout": []})
        shape = [int(v) for v in tfl.subgraphs[si].tensors[ti].shape]
        layout = _layout(perm, shape, t.shape)
        if isinstance(layout, np.ndarray) and t.method not in FOLLOWS_ANY_ORDER:
            raise TfliteExportError(f"layer {name}: the converter reordered its weight {shape}; "
                                    f"{t.method} can only follow a kept, transposed or axis-permuted weight")
        info["layout"].append(slot_layout(layout))
        if decode == "load":
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


def _layout(perm: np.ndarray, shape, source_shape):
    """How the converter laid the weight out: "W" (as in torch), "WT" (a 2-D weight transposed),
    a tuple of axes (the N-D weight transposed by them: a conv's OIHW filter as OHWI), or,
    for anything else, the permutation of the elements itself."""
    source_shape = [int(v) for v in source_shape]
    order = np.arange(perm.size).reshape(source_shape)
    if shape == source_shape and np.array_equal(perm, order.ravel()):
        return "W"
    if len(source_shape) == 2 and shape == source_shape[::-1] and np.array_equal(perm, order.T.ravel()):
        return "WT"
    for axes in itertools.permutations(range(len(source_shape))):
        if [source_shape[a] for a in axes] == shape and np.array_equal(perm, order.transpose(axes).ravel()):
            return tuple(axes)
    return perm


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
