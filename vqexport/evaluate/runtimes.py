"""One runner for every format: torch, ONNX Runtime and LiteRT behind `.run(x) -> logits`.

Callers pass float32 batches channels first, the PyTorch order, of any rank the exporters take
([N, F], [N, C, W], [N, C, H, W], [N, C, D, H, W]); a runtime whose file takes channels last
transposes inside. The layout is the file's recorded one ("vqexport" metadata), or the user's
(--layout); only a .tflite that records none is guessed, and the guess is announced. Nothing
that is not finite is ever fed to a model.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, VqexportError, first_line
from ..formats import METADATA_KEY
from ..layouts import CHANNELS_LAST, channels_first, is_channels_last, last_perm, layout_name, to_first, to_last
from ..util.native_output import silenced
from . import EvalNote


class Runtime:
    """A loaded model. `run` takes a channels-first float32 batch and returns logits [N, classes]."""

    kind = "?"

    def __init__(self, path=None, input_spec: dict | None = None, labels=None, metadata: dict | None = None,
                 native_shape=None):
        self.path = str(path) if path is not None else None
        self.input_spec = _checked_spec(input_spec, self.name)
        self.labels = labels
        self.metadata = dict(metadata or {})  # the file's own vqexport metadata ("summary", "config", ...)
        # The file's own input shape, in its own layout (None: the model does not say), whether that
        # layout is channels last, and who said so: "metadata", "flag", "guess", or None for the
        # format's convention (channels first for torch and ONNX; rank 2 has only one layout).
        self.native_shape = [int(d) for d in native_shape] if native_shape else None
        self.channels_last = False
        self.layout_from = None

    @property
    def name(self) -> str:
        return self.path or "the model"

    @property
    def input_shape(self) -> list[int] | None:
        """The channels-first shape callers feed (batch 1), or None when the model does not say."""
        if not self.native_shape:
            return None
        s = to_first(self.native_shape) if self.channels_last else self.native_shape
        return [1, *s[1:]]

    @property
    def layout(self) -> str | None:
        """The file's own input layout (NCHW, NHWC, NC, ...), or None when its rank is unknown."""
        return layout_name(len(self.native_shape), self.channels_last) if self.native_shape else None

    def _recorded_layout(self, spec) -> None:
        """Take the layout recorded in the metadata, when it names one of this rank."""
        if self.native_shape and isinstance(spec, dict):
            last = is_channels_last(spec.get("layout"), len(self.native_shape))
            if last is not None:
                self.channels_last, self.layout_from = last, "metadata"

    def set_layout(self, layout: str) -> None:
        """The user's word (--layout) on the file's input layout; it wins over the metadata."""
        rank = len(self.native_shape) if self.native_shape else len(layout)
        last = is_channels_last(layout, rank)
        if last is None:
            names = f"{channels_first(rank)} or {CHANNELS_LAST[rank]}" if rank in (3, 4, 5) else channels_first(rank)
            raise ConfigError(f"--layout {layout}: {self.name} takes a rank-{rank} input "
                              f"{self.native_shape}; use {names}")
        if self.layout_from == "metadata" and last != self.channels_last:
            warnings.warn(f"--layout {layout} overrides the layout {self.layout} that {self.name} records",
                          EvalNote, stacklevel=2)
        self.channels_last, self.layout_from = last, "flag"

    def set_input_shape(self, shape) -> None:
        """--input-shape: the channels-first shape to feed, for a model that does not say or to override it."""
        shape = [int(d) for d in shape]
        self.native_shape = to_last(shape) if self.channels_last else shape

    def to_native(self, x) -> np.ndarray:
        """A channels-first batch, checked (rank, finite) and put in the file's own layout for run_native."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise DataError(f"{self.name}: the inputs must be numbers, got {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.native_shape and x.ndim != len(self.native_shape):
            raise DataError(f"{self.name}: takes a batch {channels_first(len(self.native_shape))} "
                            f"{self.input_shape}, got shape {list(x.shape)}")
        if x.ndim < 2:
            raise DataError(f"{self.name}: takes a batch [N, ...], got shape {list(x.shape)}")
        if not np.isfinite(x).all():
            raise DataError(f"{self.name}: the inputs hold NaN or inf; refusing to feed them to the model")
        if self.channels_last and x.ndim >= 3:
            x = np.ascontiguousarray(x.transpose(last_perm(x.ndim)))
        return x

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.run_native(self.to_native(x))

    def run_native(self, x: np.ndarray) -> np.ndarray:
        """Logits for a batch already in the file's own layout (see to_native)."""
        raise NotImplementedError

    def _cannot_run(self, x, e: BaseException) -> DataError:
        layout = f"{self.layout} " if self.layout else ""
        return DataError(f"{self.name}: cannot run on {layout}inputs of shape {list(x.shape)}: {_reason(e)}")

    def version(self) -> str:
        return self.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path or ''} input={self.input_shape}>"


def open_runtime(path_or_module, threads: int | None = None, layout: str | None = None) -> Runtime:
    """A Runtime for a .onnx, .tflite, .vqm, TorchScript/.pt2/state-dict-free .pt, nn.Module,
    LoadedModel or CompressedModel. threads: intra-op threads (None: the runtime's default).
    layout: the file's input layout when the user says it (--layout), else the recorded one."""
    return settle_layout(_open(path_or_module, threads), layout)


def settle_layout(rt: Runtime, layout: str | None) -> Runtime:
    """Apply --layout, or announce the guess when the layout is neither recorded nor given."""
    if layout:
        rt.set_layout(layout)
    elif rt.layout_from == "guess":
        other = layout_name(len(rt.native_shape), not rt.channels_last)
        warnings.warn(f"{rt.name} records no input layout; taking its input {rt.native_shape} as {rt.layout} "
                      f"({'channels last, as TFLite does' if rt.channels_last else 'channels first'}); "
                      f"pass --layout {other} if it is not", EvalNote, stacklevel=2)
    return rt


def _open(obj, threads):
    from ..ir import CompressedModel
    from ..load import LoadedModel
    from ..torch_bridge import to_torch

    if isinstance(obj, CompressedModel):
        return TorchRuntime(to_torch(obj), obj.metadata.get("input"), obj.metadata.get("labels"), threads,
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
        return TorchRuntime(to_torch(cm), cm.metadata.get("input"), cm.metadata.get("labels"), threads, path=path,
                            metadata=cm.metadata)
    from ..load import load_model

    lm = load_model(path)
    return TorchRuntime(lm.module, lm.input, lm.labels, threads, path=path)


class TorchRuntime(Runtime):
    kind = "torch"

    def __init__(self, module, input_spec=None, labels=None, threads=None, path=None, metadata=None):
        import torch

        name = str(path) if path is not None else "the model"
        super().__init__(path, input_spec, labels, metadata, _spec_shape(input_spec, name))
        self._recorded_layout(input_spec)
        self.module = getattr(module, "module", module)
        if hasattr(self.module, "eval"):
            self.module.eval()
        if threads:
            torch.set_num_threads(int(threads))

    def run_native(self, x):
        import torch

        try:
            with torch.inference_mode():
                out = self.module(torch.from_numpy(x))
        except (RuntimeError, ValueError, TypeError, IndexError) as e:  # the user's model on the user's data
            raise self._cannot_run(x, e) from None
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
        except Exception as e:  # noqa: BLE001 - ORT raises its own types for a bad file
            raise VqexportError(f"{path}: ONNX Runtime cannot load it: {first_line(e, 300)}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        meta = _json(props.get(METADATA_KEY))
        meta = meta if isinstance(meta, dict) else {}
        spec = meta.get("input") or _json(props.get("input"))
        labels = meta.get("labels") or _json(props.get("labels"))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
        shape = _spec_shape(spec, str(path))
        if shape is None and len(inp.shape) >= 2 and all(isinstance(d, int) and d > 0 for d in inp.shape[1:]):
            shape = [1, *inp.shape[1:]]  # the graph's own, batch 1 when it is symbolic
        super().__init__(path, spec, labels, meta, shape)
        self._recorded_layout(spec)

    def run_native(self, x):
        if self._fixed_batch and x.shape[0] != self._fixed_batch:
            b = self._fixed_batch
            return np.concatenate([self.run_native(x[i:i + b]) for i in range(0, len(x), b)])
        try:
            return self.session.run(None, {self.input_name: x})[0]
        except Exception as e:  # noqa: BLE001 - ORT's own exception types (InvalidArgument, Fail, ...) for a shape it refuses
            raise self._cannot_run(x, e) from None

    def version(self):
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__}"


class LiteRtRuntime(Runtime):
    kind = "litert"

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from ..formats.tflite.external import interpreter_source

        try:
            # A decode="load" file is decoded here, before the interpreter exists. silenced():
            # "INFO: Created TensorFlow Lite XNNPACK delegate"; errors still raise.
            with interpreter_source(path) as source, silenced():
                self.interpreter = Interpreter(**source, num_threads=int(threads) if threads else None)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise VqexportError(f"{path}: LiteRT cannot load it: {str(e).strip().splitlines()[0][:300]}") from None
        meta = _tflite_info(path)
        meta = meta if isinstance(meta, dict) else {}
        spec = meta.get("input") if isinstance(meta.get("input"), dict) else None
        detail = self.interpreter.get_input_details()[0]
        self._in = detail["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]
        self._shape = [int(d) for d in detail["shape"]]  # as allocated now (the batch changes)
        self._dtype = detail["dtype"]
        super().__init__(path, spec, meta.get("labels"), meta, [1, *self._shape[1:]])
        last = _tflite_layout(self._shape, spec)
        if last is not None:
            self.channels_last, self.layout_from = last, "metadata"
        elif len(self._shape) >= 3:
            self.channels_last, self.layout_from = _guess_channels_last(self._shape), "guess"

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

    def run_native(self, x):
        if list(x.shape[1:]) != self._shape[1:]:
            raise DataError(f"{self.name}: takes {self.layout} {[1, *self._shape[1:]]}, got inputs of shape "
                            f"{list(x.shape)} ({self.layout})")
        if not self._resize(len(x)):  # a graph that cannot take this batch: one sample at a time
            if self._resize(1):
                return np.concatenate([self._invoke(x[i:i + 1]) for i in range(len(x))])
        return self._invoke(x)

    def _invoke(self, x):
        try:
            self.interpreter.set_tensor(self._in, x.astype(self._dtype, copy=False))
            self.interpreter.invoke()
        except (ValueError, RuntimeError) as e:
            raise self._cannot_run(x, e) from None
        return np.array(self.interpreter.get_tensor(self._out), dtype=np.float32)

    def version(self):
        try:
            from importlib.metadata import version

            return f"ai-edge-litert {version('ai-edge-litert')}"
        except Exception:  # noqa: BLE001 - only a label
            return "litert"


def _tflite_layout(shape, spec) -> bool | None:
    """Channels last per the metadata of a .tflite (None: it does not say). The recorded source
    (PyTorch) shape against the file's own decides when they differ; else the layout's name."""
    if not isinstance(spec, dict):
        return None
    rank = len(shape)
    src = spec.get("source_shape")
    if rank >= 3 and isinstance(src, list) and len(src) == rank and all(isinstance(d, int) for d in src):
        first, last = list(src[1:]) == shape[1:], to_last(src)[1:] == shape[1:]
        if first != last:
            return last
    # vqexport before the layout names by rank wrote "NCHW" for every rank: that names nothing here.
    return is_channels_last(spec.get("layout"), rank)


def _guess_channels_last(shape) -> bool:
    """TFLite's convention is channels last; channels first only when dim 1 looks like the channels
    (1, 3 or 4) and the last dim does not."""
    return not (shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4))


def _spec_shape(spec, name) -> list[int] | None:
    if not isinstance(spec, dict) or spec.get("shape") is None:
        return None
    shape = spec["shape"]
    if (not isinstance(shape, list) or not 2 <= len(shape) <= 8
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise VqexportError(f"{name}: its metadata records an unusable input shape {str(shape)[:80]}")
    return [1, *shape[1:]]


def _checked_spec(spec, name) -> dict | None:
    """The input spec, with its mean and std checked: both or neither, finite numbers, std > 0."""
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise VqexportError(f"{name}: its metadata records an input spec that is not a mapping")
    mean, std = spec.get("mean"), spec.get("std")
    if mean is None and std is None:
        return dict(spec)
    if mean is None or std is None:
        have, lack = ("mean", "std") if std is None else ("std", "mean")
        raise VqexportError(f"{name}: its metadata records an input {have} but no {lack}")
    try:
        m = np.asarray(mean, dtype=np.float64).reshape(-1)
        s = np.asarray(std, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        m = s = np.array([np.nan])
    if not m.size or not s.size or not np.isfinite(m).all() or not np.isfinite(s).all() or (s <= 0).any():
        raise VqexportError(f"{name}: its metadata records an unusable input mean {str(mean)[:60]} / std "
                            f"{str(std)[:60]} (need finite numbers, std > 0)")
    return dict(spec)


def _reason(e: BaseException) -> str:
    """One line from a runtime's exception: TorchScript puts the cause on its last line, ONNX Runtime
    spreads a short one over several."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].startswith("The following operation failed"):
        line = lines[-1]
    elif lines[0].startswith("[ONNXRuntimeError]"):
        line = " ".join(lines)
    else:
        line = lines[0]
    return re.sub(r"^\w+(Error|Exception): ", "", line)[:300]


def _tflite_info(path) -> dict | None:
    """The "vqexport" entry of a .tflite the interpreter has loaded already: only a hint, so a
    malformed one reads as none."""
    from ..formats.tflite.flatbuffer import TfliteLoadError, read_info

    try:
        return read_info(path)
    except TfliteLoadError:
        return None


def _json(text):
    if text is None:
        return None
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).split(b"\0")[0].decode("utf-8", "replace")
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None
