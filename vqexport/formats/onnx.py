"""ONNX export: the network from torch.onnx, its compressed weights decoded in-graph.

The torch exporter writes the model with the decoded weights; each compressed weight's
initializer is then swapped for its payload (codebook + packed index bytes, or the two
svd factors) and a small decode subgraph whose output keeps the initializer's name, so
every consumer (Gemm with transB=1, MatMul with a transposed weight, ...) is untouched.

Every decode op has constant inputs only, so ONNX Runtime folds the decode once when the
session is created and then runs the same graph as the dense model. Index-sized tensors
are computed, never stored: the file holds the payload and small constants only.

Unpacking b-bit indices (docs/FORMAT.md, "Bit packing"). When b divides 8 (1, 2, 4, 8 bits)
each byte holds 8/b whole values: a [256, 8/b] table of the values in every possible byte
(computed in-graph with Range, Div and Mod) is gathered by the stored bytes; for kmeans and
binary the table holds the codebook entries themselves, so the weight is two Gathers and a
Reshape. Other widths: 8 values fill exactly b bytes, so the bytes are viewed as [G, b],
one row per 8 values. Value j of a row is floor(word_j / 2^s_j) mod 2^b, where word_j is
the (up to 3) bytes holding it read as a little-endian integer and s_j its bit offset in the
first of them. That is linear in the bytes, so one MatMul by a constant [b, 8] matrix gives
word_j / 2^s_j for all j; every partial sum is a multiple of 2^-s_j below 2^(24 - s_j), so
float32 holds it exactly.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, VqexportError
from . import METADATA_KEY
from .torch_onnx import OPSET, torch_to_onnx
from ..util.fileio import atomic_path, check_target
from ..ir import CompressedModel, CompressedTensor
from ..methods.registry import decode
from ..torch_bridge import to_torch
from ..layouts import channels_first, is_channels_last
from ..util.progress import layer_bar, stage

MAX_PROTO = (1 << 31) - (64 << 20)  # above this the weights go to an external-data file


# ---------------------------------------------------------------------------------------------
# public API


def export_onnx(compressed: CompressedModel, path, model=None, opset: int | None = None,
                input_shape=None, quiet: bool = True) -> dict:
    """Write `compressed` as an ONNX graph that stores the compressed payload and decodes it.

    model: the network (nn.Module or LoadedModel); default: the architecture named in the
    metadata. Returns {"path", "bytes", "initializer_bytes",
    "ideal_bytes", "opset", "layers": {tensor: {"initializer", "transposed", "method"}}}.
    quiet=False shows progress on stderr.
    """
    spec = _input_spec(compressed.metadata.get("input"), input_shape)
    # The uncompressed tensors are shared, not copied, and the decoded network is let go as soon
    # as torch.onnx is done with it, before the proto is parsed back. (torch.onnx.export itself
    # still holds about three copies of the weights while it serialises: docs/results/scale.md.)
    def decoded_network():
        return to_torch(compressed, model, quiet=quiet, share_raw=True)

    opset = opset or OPSET
    with stage("exporting the network to ONNX (torch.onnx)", quiet):
        proto = torch_to_onnx(decoded_network, spec["shape"], opset)
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    consumers = _consumer_count(graph)
    new_nodes, new_inits, layers = [], [], {}
    bar = layer_bar([(t.name, t.numel) for t in compressed.compressed], quiet, "decode graph")
    for t in compressed.compressed:
        w = np.ascontiguousarray(decode(t), dtype=np.float32)
        name, transposed = _find_weight(t, w, inits, consumers)
        del w
        nodes, payload = decode_subgraph(t, name, transposed)
        new_nodes += nodes
        new_inits += payload
        graph.initializer.remove(inits.pop(name))
        layers[t.name] = {"initializer": name, "transposed": transposed, "method": t.method}
        bar.done(t.name)
    bar.close()
    # The decode nodes read initializers only, so they may all come first.
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + old)
    graph.initializer.extend(new_inits)
    _set_metadata(proto, compressed.metadata, spec)
    info = _save(proto, path)
    info.update(ideal_bytes=compressed.ideal_bits() / 8, opset=opset, layers=layers)
    return info


def export_dense_onnx(model, path, input_spec: dict | None = None, opset: int | None = None,
                      metadata: dict | None = None) -> dict:
    """The uncompressed baseline: the same graph, names and metadata, with dense weights.

    model: nn.Module or LoadedModel (its labels, input spec and source are used when present).
    """
    module = getattr(model, "module", model)
    meta = dict(metadata or {})
    if hasattr(model, "source_metadata"):
        meta.setdefault("source", model.source_metadata())
        if getattr(model, "labels", None):
            meta.setdefault("labels", list(model.labels))
        if getattr(model, "input", None):
            meta.setdefault("input", dict(model.input))
    spec = _input_spec(input_spec or meta.get("input"), None)
    opset = opset or OPSET
    proto = torch_to_onnx(module.eval, spec["shape"], opset)
    _set_metadata(proto, meta, spec)
    info = _save(proto, path)
    dense = sum(int(np.prod(v.shape)) * v.element_size() for v in module.state_dict().values())
    info.update(ideal_bytes=float(dense), opset=opset, layers={})
    return info


# ---------------------------------------------------------------------------------------------
# decode subgraphs


class _Builder:
    """Collects nodes and small constant initializers under one name prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes, self.inits = [], []
        self._n = 0

    def name(self, what: str) -> str:
        self._n += 1
        return f"{self.prefix}/{what}_{self._n}"

    def const(self, what: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = f"{self.prefix}/{what}"
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def op(self, op_type: str, inputs, output: str | None = None, **attrs) -> str:
        from onnx import helper

        out = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def shape(self, what: str, dims) -> str:
        return self.const(what, np.asarray(dims, dtype=np.int64))


def unpack_matrix(bits: int) -> np.ndarray:
    """[bits, 8] float32: (row of b bytes, as float) @ M = value_j * 2^0 + lower-bit fraction + higher bits."""
    m = np.zeros((bits, 8), dtype=np.float32)
    for j in range(8):
        first, shift = divmod(j * bits, 8)
        last = (j * bits + bits - 1) // 8
        for byte in range(first, last + 1):
            m[byte, j] = np.float32(256.0 ** (byte - first) / 2.0 ** shift)
    return m


def _unpack(b: _Builder, t: CompressedTensor, shape=None) -> str:
    """int32 indices, shaped `shape` (default: the section's logical shape), from the packed bytes."""
    sec = t.sections["indices"]
    bits, count = sec.bits, sec.count
    shape = list(sec.shape) if shape is None else list(shape)
    if 8 % bits == 0:  # whole values per byte: one lookup per byte
        x = b.op("Gather", [_byte_table(b, bits), _bytes_int32(b, sec)], axis=0)  # [bytes, 8 / bits]
        return _fit(b, x, -(-count * bits // 8) * (8 // bits), count, shape)
    groups = -(-count // 8)
    raw = np.zeros(groups * bits, dtype=np.uint8)
    data = np.asarray(sec.data, dtype=np.uint8).ravel()
    raw[: data.size] = data
    x = b.op("Cast", [b.const("indices", raw.reshape(groups, bits))], to=1)  # FLOAT
    x = b.op("MatMul", [x, b.const("unpack", unpack_matrix(bits))])
    if bits != 16:  # at 16 bits every value is two whole bytes: already exact
        x = b.op("Floor", [x])
        x = b.op("Mod", [x, b.const("modulus", np.array(float(1 << bits), dtype=np.float32))], fmod=1)
    x = b.op("Cast", [x], to=6)  # INT32
    return _fit(b, x, groups * 8, count, shape)


def _bytes_int32(b: _Builder, sec) -> str:
    """The packed bytes as one uint8 initializer, widened in-graph to int32 (Gather's index type)."""
    data = np.asarray(sec.data, dtype=np.uint8).ravel()
    return b.op("Cast", [b.const("indices", data)], to=6)


def _byte_table(b: _Builder, bits: int) -> str:
    """int32 [256, 8 / bits]: the values packed in each possible byte, lowest bits first (computed)."""
    per = 8 // bits

    def scalar(what, v):
        return b.const(what, np.array(v, dtype=np.int32))

    byte = b.op("Range", [scalar("byte_start", 0), scalar("byte_limit", 256), scalar("byte_delta", 1)])
    byte = b.op("Reshape", [byte, b.shape("byte_column", [256, 1])])
    shifts = b.const("byte_shifts", (1 << (bits * np.arange(per))).astype(np.int32).reshape(1, per))
    return b.op("Mod", [b.op("Div", [byte, shifts]), scalar("byte_modulus", 1 << bits)])


def _fit(b: _Builder, x: str, total: int, count: int, shape, output: str | None = None) -> str:
    """Reshape `total` values to `shape`, dropping the padding past `count`."""
    if total != count:
        x = b.op("Reshape", [x, b.shape("flat", [-1])])
        x = b.op("Slice", [x, b.shape("start", [0]), b.shape("count", [count]), b.shape("axis0", [0])])
    return b.op("Reshape", [x, b.shape("index_shape", shape)], output)


def _codebook(b: _Builder, t: CompressedTensor, role: str = "codebook") -> str:
    sec = t.sections[role]
    name = b.const(role, np.asarray(sec.data))
    return b.op("Cast", [name], to=1) if sec.dtype != "float32" else name


def _offsets(b: _Builder, idx: str, segments: int, k: int) -> str:
    """idx [segments, N] + j*k per row j: indices into the codebook flattened to [segments*k, ...]."""
    def scalar(what, v):
        return b.const(what, np.array(v, dtype=np.int32))

    off = b.op("Range", [scalar("off_start", 0), scalar("off_limit", segments * k), scalar("off_delta", k)])
    off = b.op("Reshape", [off, b.shape("column", [-1, 1])])
    return b.op("Add", [idx, off])


def decode_subgraph(t: CompressedTensor, output: str, transposed: bool = False):
    """ONNX nodes and initializers that compute t's weight W [m, n] (or W^T) into `output`."""
    b = _Builder(f"vq/{t.name}")
    m, n = t.shape
    if t.method == "pq":  # the layout is a Transpose + Reshape either way; W^T costs nothing extra
        s, k, d = t.sections["codebook"].shape
        cb = b.op("Reshape", [_codebook(b, t), b.shape("flat_codebook", [s * k, d])])
        parts = b.op("Gather", [cb, _offsets(b, _unpack(b, t), s, k)], axis=0)  # [s, vectors, d]
        # columns: W[r, j*d+c] = parts[j, r, c]; rows: W[j*d+c, col] = parts[j, col, c]
        along_rows = t.rows != transposed  # the output's rows are the segments': [s, d, vectors]
        parts = b.op("Transpose", [parts], perm=[0, 2, 1] if along_rows else [1, 0, 2])
        b.op("Reshape", [parts, b.shape("weight_shape", [n, m] if transposed else [m, n])], output)
        return b.nodes, b.inits
    final = None if transposed else output
    if t.method in ("binary", "kmeans") and 8 % t.bits == 0:
        # gather the weights of every possible byte once, then one lookup per stored byte
        table = b.op("Gather", [_codebook(b, t), _byte_table(b, t.bits)], axis=0)  # [256, 8 / bits]
        x = b.op("Gather", [table, _bytes_int32(b, t.sections["indices"])], axis=0)
        w = _fit(b, x, -(-m * n * t.bits // 8) * (8 // t.bits), m * n, [m, n], final)
    elif t.method in ("binary", "kmeans"):
        w = b.op("Gather", [_codebook(b, t), _unpack(b, t, [m, n])], final, axis=0)
    elif t.method == "rq":
        stages, k, _ = t.sections["codebook"].shape
        cb = b.op("Reshape", [_codebook(b, t), b.shape("flat_codebook", [stages * k, n])])
        parts = b.op("Gather", [cb, _offsets(b, _unpack(b, t), stages, k)], axis=0)  # [stages, m, n]
        w = None
        for i in range(stages):  # a chain of Adds, stage 0 first, as the reference sums
            last = i == stages - 1
            part = b.op("Gather", [parts, b.const(f"stage{i}", np.array(i, dtype=np.int64))],
                        final if last and stages == 1 else None, axis=0)
            w = part if w is None else b.op("Add", [w, part], final if last else None)
    elif t.method == "svd":  # W = A @ B, folded once like the rest: the graph runs the dense layer
        w = b.op("MatMul", [_codebook(b, t, "factor_a"), _codebook(b, t, "factor_b")], final)
    else:
        raise VqexportError(f"{t.name}: method {t.method!r} has no ONNX decode")
    if transposed:
        b.op("Transpose", [w], output, perm=[1, 0])
    return b.nodes, b.inits


# ---------------------------------------------------------------------------------------------
# torch export, weight lookup, metadata, saving


def _input_spec(spec, input_shape) -> dict:
    spec = dict(spec or {})
    if input_shape is not None:
        spec["shape"] = [int(x) for x in input_shape]
    if not spec.get("shape"):
        raise ConfigError("the model has no input shape in its metadata; pass --input-shape N,C,H,W")
    spec["shape"] = [1] + [int(x) for x in spec["shape"][1:]]
    # torch.onnx keeps PyTorch's channels-first order; the name says which rank (NC, NCW, NCHW, ...).
    if is_channels_last(spec.get("layout"), len(spec["shape"])) is None:
        spec["layout"] = channels_first(len(spec["shape"]))
    return spec


def _consumer_count(graph) -> dict:
    count = {}
    for node in graph.node:
        for name in node.input:
            count[name] = count.get(name, 0) + 1
    return count


def _find_weight(t: CompressedTensor, w: np.ndarray, inits: dict, consumers: dict):
    """The initializer holding t's decoded weight: by state_dict name, else by content (W or W^T)."""
    m, n = w.shape
    named = inits.get(t.name)
    if named is not None and tuple(named.dims) == (m, n) and _same(named, w):
        return t.name, False
    wt = None
    for name, init in inits.items():
        dims = tuple(init.dims)
        if init.data_type != 1 or dims not in ((m, n), (n, m)) or not consumers.get(name):
            continue
        if dims == (m, n) and _same(init, w):
            return name, False
        if dims == (n, m):
            wt = np.ascontiguousarray(w.T) if wt is None else wt
            if _same(init, wt):
                return name, True
    raise VqexportError(f"{t.name}: the ONNX export holds no initializer with this weight (W or W^T); "
                        "the exporter folded it into another constant, which vqexport cannot replace")


def _same(init, w: np.ndarray) -> bool:
    from onnx import numpy_helper

    if init.raw_data:
        return len(init.raw_data) == w.nbytes and init.raw_data == w.astype("<f4", copy=False).tobytes()
    return np.array_equal(numpy_helper.to_array(init), w)


def _set_metadata(proto, meta: dict, spec: dict) -> None:
    from .. import __version__

    info = {"labels": meta.get("labels"), "input": spec, "source": meta.get("source"), "config": meta.get("config"),
            "summary": meta.get("summary")}
    props = {METADATA_KEY: json.dumps(info), "labels": json.dumps(meta.get("labels")), "input": json.dumps(spec)}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "vqexport", __version__


def _save(proto, path) -> dict:
    import onnx

    path = Path(path)
    init_bytes = sum(_tensor_nbytes(i) for i in proto.graph.initializer)
    external = init_bytes > MAX_PROTO
    with atomic_path(path) as tmp:
        if external:  # only dense baselines of the largest models (> 2 GB) get here
            data_name = path.name + ".data"
            onnx.save(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data_name, size_threshold=1024)
            os.replace(tmp.parent / data_name, check_target(path.parent / data_name))
        else:
            onnx.save(proto, str(tmp))
    size = path.stat().st_size + ((path.parent / (path.name + ".data")).stat().st_size if external else 0)
    return {"path": str(path), "bytes": size, "initializer_bytes": init_bytes, "external_data": external}


def _tensor_nbytes(init) -> int:
    if init.raw_data:
        return len(init.raw_data)
    from onnx import numpy_helper

    return numpy_helper.to_array(init).nbytes
