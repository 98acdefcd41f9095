"""The Python API. The CLI is a thin layer over these functions."""
from __future__ import annotations

from .config import MIN_SIZE, CompressConfig, QuantConfig
from .errors import ConfigError
from .ir import CompressedModel
from .load import LoadedModel
from .load import load_model as _load
from .weights import TYPES


def load_model(path_or_module, arch: str | None = None, trust_pickle: bool = False) -> LoadedModel:
    """Load a TorchScript archive, a .pt2 program, or a state_dict with arch=...; see vqexport.load.

    Nothing in the file runs Python code or chooses what to import; a pickled nn.Module, or a
    .pt2 that needs Python objects, loads only with trust_pickle=True.
    """
    return _load(path_or_module, arch=arch, trust_pickle=trust_pickle)


def compress(model, method: str = "kmeans", *, layers="*", seed: int = 0, overrides=None,
             types=TYPES, min_size: int = MIN_SIZE, type_overrides=None,
             config: CompressConfig | None = None, quiet: bool = True, calib=None, calib_images: int | None = None,
             **params) -> CompressedModel:
    """Compress the weights of `model` (a LoadedModel, an nn.Module, or a path): every weight of the
    chosen types (conv, linear, embedding, attention) with at least min_size elements.

    calib: data-aware fitting on calibration images (vqexport.calibrate): a data set name or path
    (its training split, calib_images of them, drawn by seed), or a vqexport.calibrate.Calibration.

    Example: write_vqm(compress(load_model("model.pt"), "pq", k=16, d=4, seed=0), "model.vqm")
    """
    from .compressor import compress_model

    if not isinstance(model, LoadedModel):
        model = _load(model)
    if config is None:
        config = CompressConfig(quant=QuantConfig(method=method, **params), layers=layers,
                                overrides=overrides or (), seed=seed, types=types, min_size=min_size,
                                type_overrides=type_overrides or ())
    if isinstance(calib, str):
        from .calibrate import DEFAULT_IMAGES, calibration

        calib = calibration(model, calib, calib_images or DEFAULT_IMAGES, config.seed)
    elif calib_images is not None:
        raise ConfigError("calib_images applies with calib=DATA")
    return compress_model(model, config, quiet=quiet, calib=calib)


def read_vqm(path) -> CompressedModel:
    from .formats.vqm import read_vqm as _read

    return _read(path)


def write_vqm(compressed: CompressedModel, path, index_coding: str = "auto") -> None:
    """Write `compressed` as a .vqm file (docs/FORMAT.md); the file appears only when complete.

    index_coding: "auto" stores each tensor's indices Huffman-coded where that is smaller (a
    version 3.0 file), "packed" keeps them plain (1.0 or 2.0, as readers before 3.0 read).
    """
    from .formats.vqm import write_vqm as _write

    _write(compressed, path, index_coding)


def to_torch(compressed: CompressedModel, model=None, quiet: bool = True):
    """The network with the decoded weights loaded: a copy of `model` (a LoadedModel, an nn.Module,
    or an architecture string you trust); default: the architecture the metadata names, when
    vqexport.arch allows it."""
    from .torch_bridge import to_torch as _to_torch

    return _to_torch(compressed, model, quiet=quiet)


def to_onnx(compressed: CompressedModel, path, model=None, **options):
    """Write an ONNX graph that keeps the compressed weights and decodes them with Gather.

    model: the network the weights belong to (a LoadedModel, an nn.Module, or an architecture
    string you trust); default: the architecture the metadata names, as for to_torch.
    """
    from .formats.onnx import export_onnx

    return export_onnx(compressed, path, model=model, **options)


def to_tflite(compressed: CompressedModel, path, model=None, **options):
    """Write a .tflite that keeps the compressed weights and decodes them with builtin ops (model: as to_onnx)."""
    from .formats.tflite.export import export_tflite

    return export_tflite(compressed, path, model=model, **options)
