"""The one torch.onnx call, shared by the ONNX and the TFLite exporters (which converts from ONNX).

One input spec, one opset, one way of handling the fused attention kernel and one error: both
exporters see the same graph for the same network.
"""
from __future__ import annotations

import os
import tempfile
import warnings

from ..errors import ConfigError, VqexportError, first_line
from ..util.native_output import silenced

OPSET = 17  # LayerNormalization is 17; ONNX Runtime 1.23 (desktop) and Android 1.2x load 17
IR_VERSION = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}  # the IR version of each opset (<= 10: Android ORT)
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class TorchExportError(VqexportError):
    """torch.onnx could not export the network."""


def torch_to_onnx(make_module, shape, opset: int = OPSET, *, dynamic_batch: bool = True):
    """torch.onnx (TorchScript path) with constant folding; weights stay named initializers.

    make_module() returns the network; it is let go before the file is parsed back, so the
    network and the proto (each as large as the weights) are not both held at the peak.
    dynamic_batch: the batch dimension is symbolic ("batch"); TFLite's converter wants it fixed.
    """
    import onnx
    import torch

    if opset not in IR_VERSION:
        raise ConfigError(f"opset {opset} is not supported; use one of {', '.join(map(str, IR_VERSION))}")
    module = make_module()
    module = getattr(module, "module", module)
    x = torch.zeros(*shape)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with tempfile.TemporaryDirectory(prefix="vqexport-onnx-") as tmp:
        out = os.path.join(tmp, "model.onnx")
        fastpath = _mha_fastpath(False)  # the fused attention kernel has no ONNX export
        try:
            with warnings.catch_warnings(), silenced():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (x,), out, dynamo=False, opset_version=opset, do_constant_folding=True,
                                  export_params=True, keep_initializers_as_inputs=False,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes)
        except Exception as e:  # noqa: BLE001 - torch raises many types for a network it cannot export
            raise TorchExportError(f"torch.onnx could not export the network: {first_line(e, 300)}") from None
        finally:
            _mha_fastpath(fastpath)
        del module
        proto = onnx.load(out, load_external_data=True)
    proto.ir_version = IR_VERSION[opset]
    return proto


def _mha_fastpath(enabled: bool | None):
    """Set torch's fused multi-head-attention fast path; returns the previous setting."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        return None
    before = mha.get_fastpath_enabled()
    if enabled is not None:
        mha.set_fastpath_enabled(enabled)
    return before
