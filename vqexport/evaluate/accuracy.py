"""Top-1 / top-5 accuracy of any format on the same images, with its sizes and compression rates."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..util.report import human_bytes, table
from .datasets import fit_inputs, load_dataset, prepare
from .runtimes import open_runtime, settle_layout

BATCH = 100


def predict(runtime, x: np.ndarray) -> np.ndarray:
    """Logits for a channels-first batch, normalised with the runtime's own mean/std if it records them,
    in fixed batches."""
    xn = prepare(x, runtime.input_spec)
    return np.concatenate([runtime.run(xn[i:i + BATCH]) for i in range(0, len(xn), BATCH)])


def topk(logits: np.ndarray, y: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[1])
    best = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(best == y[:, None], axis=1)))


def open_for_eval(path, source=None, arch=None, trust_pickle=False, layout=None):
    """A runtime and the model's own metadata summary (sizes), for any supported file."""
    from ..load import LoadedModel, load_model

    path = Path(path)
    if path.suffix == ".vqm" and (source or arch):
        from ..formats.vqm import read_vqm
        from ..torch_bridge import to_torch
        from .runtimes import TorchRuntime

        cm = read_vqm(path)
        if source and not isinstance(source, LoadedModel):
            source = load_model(source, arch=arch, trust_pickle=trust_pickle)
        # without --model, the user's --arch (never the one the file names) builds the network
        rt = TorchRuntime(to_torch(cm, source or arch), cm.metadata.get("input"), cm.metadata.get("labels"),
                          path=path, metadata=cm.metadata)
        return settle_layout(rt, layout)
    if path.suffix not in (".vqm", ".onnx", ".tflite") and (arch or trust_pickle):
        return open_runtime(load_model(path, arch=arch, trust_pickle=trust_pickle), layout=layout)
    return open_runtime(path, layout=layout)


def evaluate_file(path, data: str = "mnist5k", source=None, arch=None, trust_pickle=False, images=None,
                  scale: float | None = None, layout: str | None = None, input_shape=None) -> dict:
    """Top-1/top-5 of one model file on `data` (or on images=(x, y), already loaded).

    scale: divide the user's data by it (None: as given). layout: the file's input layout when it
    does not record one (or to override). input_shape: the channels-first shape to feed when the
    model does not say (or to override)."""
    rt = open_for_eval(path, source, arch, trust_pickle, layout)
    if input_shape:
        rt.set_input_shape(input_shape)
    x, y = images if images is not None else load_dataset(data, rt.input_shape, scale, rt.labels)
    x = fit_inputs(x, rt.input_shape, data, path)
    start = time.perf_counter()
    logits = predict(rt, x)
    seconds = time.perf_counter() - start
    if logits.ndim != 2 or len(logits) != len(y):
        raise DataError(f"{path}: its output has shape {list(logits.shape)}; eval needs logits [N, classes]")
    if y.max(initial=0) >= logits.shape[1]:
        raise DataError(f"{data}: has label {int(y.max())}, but the model {path} has only {logits.shape[1]} outputs")
    summary = rt.metadata.get("summary") or {}
    summary = summary if isinstance(summary, dict) else {}
    size = os.path.getsize(path)
    dense = summary.get("model_dense_bytes")
    dense = dense if isinstance(dense, (int, float)) and not isinstance(dense, bool) and dense > 0 else None
    layer_compression = summary.get("layer_compression", 1.0)
    if not isinstance(layer_compression, (int, float)) or isinstance(layer_compression, bool):
        layer_compression = 1.0
    return {
        "file": str(path), "format": Path(path).suffix.lstrip(".") or "pt", "data": data, "images": int(len(y)),
        "top1": topk(logits, y, 1), "top5": topk(logits, y, 5), "bytes": size,
        "layer_compression": float(layer_compression),
        "model_compression": (dense / size) if dense else None, "seconds": seconds,
        "input_shape": rt.input_shape or [1, *x.shape[1:]], "input_layout": rt.layout,
        "scale": scale,
    }


def format_eval(r: dict) -> str:
    mc = "-" if r["model_compression"] is None else f"{r['model_compression']:.2f}x"
    return table([[r["file"], r["data"], r["images"], f"{100 * r['top1']:.2f}%", f"{100 * r['top5']:.2f}%",
                   human_bytes(r["bytes"]), f"{r['layer_compression']:.2f}x", mc]],
                 ["model", "data", "images", "top-1", "top-5", "size", "layers", "whole model"])
