"""ONNX export: the network from torch.onnx, its compressed weights decoded in-graph.

The torch exporter writes the model with the decoded weights; each compressed weight's
initializer is then swapped for its payload (codebook + packed index bytes, or the two
svd factors) and a small decode subgraph whose output keeps the initializer's name, so
every consumer (Gemm with transB=1, MatMul with a transposed weight, ...) is untouched.

Every decode op has constant inputs only, so ONNX Runtime folds the decode once when the
session is created and then runs the same graph as the dense model. Index-sized tensors
are computed, never stored: the file holds the payload and small constants only.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from onnx import TensorProto

from ..errors import ConfigError, VqexportError
from ..ir import CompressedModel, CompressedTensor
from ..layouts import channels_first, is_channels_last
from ..methods.registry import decode
from ..torch_bridge import to_torch
from ..util.fileio import atomic_path, check_target
from ..util.progress import layer_bar, stage
from . import METADATA_KEY, HalfPrecisionNote
from .onnx_decode import decode_subgraph
from .torch_onnx import OPSET, torch_to_onnx

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
    new_nodes, new_inits, layers, shared = [], [], {}, {}
    bar = layer_bar([(t.name, t.numel) for t in compressed.compressed], quiet, "decode graph")
    for t in compressed.compressed:
        w = np.ascontiguousarray(decode(t), dtype=np.float32)
        name, transposed = _find_weight(t, w, inits, consumers)
        del w
        nodes, payload = decode_subgraph(t, name, transposed, prefix=f"vq{len(layers)}", shared=shared)
        new_nodes += nodes
        new_inits += payload
        graph.initializer.remove(inits.pop(name))
        layers[t.name] = {"initializer": name, "transposed": transposed, "method": t.method,
                          "decode_prefix": f"vq{len(layers)}"}
        bar.done(t.name)
    bar.close()
    halves, missed = _store_half(graph, compressed, inits, consumers)
    new_nodes += halves
    if missed:
        warnings.warn(f"{len(missed)} raw tensors stay float32 in the .onnx (torch.onnx folded them into other "
                      f"constants): {', '.join(missed[:6])}", HalfPrecisionNote, stacklevel=2)
    # The decode nodes read initializers only, so they may all come first.
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + old)
    graph.initializer.extend(new_inits)
    _set_metadata(proto, compressed.metadata, spec)
    info = _save(proto, path)
    info.update(ideal_bytes=compressed.ideal_bits() / 8, opset=opset, layers=layers, widened_missed=missed)
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
    """The initializer holding t's decoded weight: by state_dict name, else by content (W, or W^T
    for a 2-D weight that the exporter transposed for MatMul)."""
    shape = tuple(w.shape)
    named = inits.get(t.name)
    if named is not None and tuple(named.dims) == shape and _same(named, w):
        return t.name, False
    flipped = shape[::-1] if len(shape) == 2 else None
    wt = None
    for name, init in inits.items():
        dims = tuple(init.dims)
        if init.data_type != TensorProto.FLOAT or dims not in (shape, flipped) or not consumers.get(name):
            continue
        if dims == shape and _same(init, w):
            return name, False
        if dims == flipped:
            wt = np.ascontiguousarray(w.T) if wt is None else wt
            if _same(init, wt):
                return name, True
    raise VqexportError(f"{t.name}: the ONNX export holds no initializer with this weight"
                        + (" (W or W^T)" if flipped else "") + "; the exporter folded it into another constant, "
                        "which vqexport cannot replace")


def _store_half(graph, cm: CompressedModel, inits: dict, consumers: dict) -> tuple[list, list[str]]:
    """The raw tensors stored in half precision (--raw-dtype float16) as float16 initializers, each
    widened by a Cast under its own name; returns the Cast nodes and the names not found (a tensor
    torch.onnx folded into another constant stays float32, and the caller says so)."""
    from onnx import helper, numpy_helper

    nodes, missed, narrowed = [], [], {}
    for name in cm.metadata.get("widened") or []:
        half = np.asarray(cm[name].sections["raw"].data, dtype=np.float16).reshape(cm[name].shape)
        wide = half.astype(np.float32)
        if any(w.shape == wide.shape and np.array_equal(w, wide) for w in narrowed.values()):
            continue  # torch.onnx stored equal tensors once (e.g. zero biases): already narrowed
        found = name if name in inits and tuple(inits[name].dims) == wide.shape and _same(inits[name], wide) \
            else next((n for n, i in inits.items() if i.data_type == TensorProto.FLOAT and tuple(i.dims) == wide.shape
                       and consumers.get(n) and _same(i, wide)), None)
        if found is None:
            missed.append(name)
            continue
        narrowed[found] = wide
        graph.initializer.remove(inits.pop(found))
        graph.initializer.append(numpy_helper.from_array(half, f"{found}/float16"))
        nodes.append(helper.make_node("Cast", [f"{found}/float16"], [found], name=f"{found}/widen",
                                      to=TensorProto.FLOAT))
    return nodes, missed


def _same(init, w: np.ndarray) -> bool:
    from onnx import numpy_helper

    if init.raw_data:
        return len(init.raw_data) == w.nbytes and init.raw_data == w.astype("<f4", copy=False).tobytes()
    return np.array_equal(numpy_helper.to_array(init), w)


def _set_metadata(proto, meta: dict, spec: dict) -> None:
    from ..version import __version__

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
