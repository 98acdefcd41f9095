"""One runner for every format: torch, ONNX Runtime and LiteRT behind `.run(x) -> logits`.

Callers always pass NCHW float32 batches; a runtime whose model takes NHWC (a .tflite from
the converter) transposes inside. Each runtime reads the input spec (shape, layout, mean,
std) and the labels from its file's "vqexport" metadata when the file has it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import VqexportError
from ..native_output import silenced

METADATA_KEY = "vqexport"


class Runtime:
    """A loaded model. `run` takes NCHW float32 [N, C, H, W] and returns logits [N, classes]."""

    kind = "?"

    def __init__(self, path=None, input_spec: dict | None = None, labels=None, metadata: dict | None = None):
        self.path = str(path) if path is not None else None
        self.input_spec = dict(input_spec) if input_spec else None
        self.labels = labels
        self.metadata = dict(metadata or {})  # the file's own vqexport metadata ("summary", "config", ...)

    @property
    def input_shape(self) -> list[int] | None:
        """The NCHW shape callers feed (batch 1), or None when the model does not say."""
        return list(self.input_spec["shape"]) if self.input_spec and self.input_spec.get("shape") else None

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def version(self) -> str:
        return self.kind

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path or ''} input={self.input_shape}>"


def open_runtime(path_or_module, threads: int | None = None) -> Runtime:
    """A Runtime for a .onnx, .tflite, .vqm, TorchScript/.pt2/state-dict-free .pt, nn.Module,
    LoadedModel or CompressedModel. threads: intra-op threads (None: the runtime's default)."""
    from ..ir import CompressedModel
    from ..load import LoadedModel

    obj = path_or_module
    if isinstance(obj, CompressedModel):
        return TorchRuntime(obj.to_torch(), obj.metadata.get("input"), obj.metadata.get("labels"), threads,
                            metadata=obj.metadata)
    if isinstance(obj, LoadedModel):
        return TorchRuntime(obj.module, obj.input, obj.labels, threads, path=obj.name)
    if not isinstance(obj, (str, Path)):
        return TorchRuntime(obj, None, None, threads)
    path = Path(obj)
    if not path.is_file():
        raise VqexportError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OrtRuntime(path, threads)
    if suffix == ".tflite":
        return LiteRtRuntime(path, threads)
    if suffix == ".vqm":
        from ..formats.vqm import read_vqm

        cm = read_vqm(path)
        return TorchRuntime(cm.to_torch(), cm.metadata.get("input"), cm.metadata.get("labels"), threads, path=path,
                            metadata=cm.metadata)
    from ..load import load_model

    lm = load_model(path)
    return TorchRuntime(lm.module, lm.input, lm.labels, threads, path=path)


def _as_nchw(x) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise VqexportError(f"expected an NCHW batch [N, C, H, W], got shape {x.shape}")
    return x


class TorchRuntime(Runtime):
    kind = "torch"

    def __init__(self, module, input_spec=None, labels=None, threads=None, path=None, metadata=None):
        import torch

        super().__init__(path, input_spec, labels, metadata)
        self.module = getattr(module, "module", module)
        if hasattr(self.module, "eval"):
            self.module.eval()
        if threads:
            torch.set_num_threads(int(threads))

    def run(self, x):
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(_as_nchw(x)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().float().numpy()

    def version(self):
        import torch

        return f"torch {torch.__version__}"


class OrtRuntime(Runtime):
    kind = "onnxruntime"

    def __init__(self, path, threads=None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types for a bad file
            raise VqexportError(f"{path}: ONNX Runtime cannot load it: {str(e).strip().splitlines()[0][:300]}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        meta = _json(props.get(METADATA_KEY)) or {}
        spec = meta.get("input") or _json(props.get("input"))
        labels = meta.get("labels") or _json(props.get("labels"))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        if not spec and all(isinstance(d, int) for d in inp.shape):
            spec = {"shape": list(inp.shape), "layout": "NCHW"}
        super().__init__(path, spec, labels, meta)

    def run(self, x):
        x = _as_nchw(x)
        if self._fixed_batch and x.shape[0] != self._fixed_batch:
            return np.concatenate([self.run(x[i:i + self._fixed_batch]) for i in range(0, len(x), self._fixed_batch)])
        return self.session.run(None, {self.input_name: x})[0]

    def version(self):
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__}"


class LiteRtRuntime(Runtime):
    kind = "litert"

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from ..formats.tflite_external import interpreter_source

        try:
            # A decode="load" file is decoded here, before the interpreter exists. silenced():
            # "INFO: Created TensorFlow Lite XNNPACK delegate"; errors still raise.
            with interpreter_source(path) as source, silenced():
                self.interpreter = Interpreter(**source, num_threads=int(threads) if threads else None)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise VqexportError(f"{path}: LiteRT cannot load it: {str(e).strip().splitlines()[0][:300]}") from None
        meta = _json(tflite_metadata(path, METADATA_KEY)) or {}
        spec = meta.get("input")
        detail = self.interpreter.get_input_details()[0]
        self._in = detail["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]
        self._shape = [int(d) for d in detail["shape"]]
        self._dtype = detail["dtype"]
        self.nhwc = _is_nhwc(self._shape, spec)
        if not spec and len(self._shape) == 4:
            n, a, b, c = self._shape
            spec = {"shape": [1, c, a, b] if self.nhwc else [1, a, b, c], "layout": "NCHW"}
        super().__init__(path, spec, meta.get("labels"), meta)

    @property
    def input_shape(self):
        """NCHW, from the interpreter's own input tensor (the metadata may describe either layout)."""
        s = self._shape
        if len(s) != 4:
            return super().input_shape
        return [1, s[3], s[1], s[2]] if self.nhwc else [1, *s[1:]]

    def _resize(self, batch: int) -> bool:
        if self._shape[0] == batch:
            return True
        try:
            self.interpreter.resize_tensor_input(self._in, [batch, *self._shape[1:]], strict=False)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            self.interpreter.resize_tensor_input(self._in, self._shape, strict=False)
            self.interpreter.allocate_tensors()
            return False
        self._shape = [batch, *self._shape[1:]]
        return True

    def run(self, x):
        x = _as_nchw(x)
        if self.nhwc:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        if not self._resize(len(x)):  # a graph that cannot take this batch: one sample at a time
            if self._resize(1):
                return np.concatenate([self._invoke(x[i:i + 1]) for i in range(len(x))])
        return self._invoke(x)

    def _invoke(self, x):
        self.interpreter.set_tensor(self._in, x.astype(self._dtype, copy=False))
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self._out), dtype=np.float32)

    def version(self):
        try:
            from importlib.metadata import version

            return f"ai-edge-litert {version('ai-edge-litert')}"
        except Exception:  # noqa: BLE001 - only a label
            return "litert"


def _is_nhwc(shape, spec) -> bool:
    """NHWC when the metadata says so; else when the last dim is the channel count and dim 1 is not."""
    if len(shape) != 4:
        return False
    layout = (spec or {}).get("layout")
    if layout in ("NHWC", "NCHW"):
        return layout == "NHWC"
    channels = (spec or {}).get("shape", [None, None])[1]
    if channels:
        return shape[3] == channels and shape[1] != channels
    return shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4)


def tflite_metadata(path, name: str) -> bytes | None:
    """The bytes of the flatbuffer Metadata entry `name` of a .tflite, or None (also for a malformed table:
    the interpreter has loaded the file already, so its metadata is only ever a hint)."""
    from ..formats.tflite_external import TfliteLoadError, read_metadata

    try:
        return read_metadata(path, name)
    except TfliteLoadError:
        return None


def _json(text):
    if text is None:
        return None
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).split(b"\0")[0].decode("utf-8", "replace")
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None
