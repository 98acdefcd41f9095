"""The converter: a PyTorch module to a float32 LiteRT flatbuffer, with litert-torch.

litert-torch (Google's PyTorch-to-LiteRT converter, formerly ai-edge-torch) lowers a torch.export
program through MLIR straight to a flatbuffer, without TensorFlow. It replaced onnx2tf
(docs/results/tflite_route.md): it converted all 15 models of the route comparison against 8,
in a third of the CPU time and under half the memory, with the same fidelity, size and ops.

TorchScript modules cannot be given to torch.export; they go through torch's TorchScript to
torch.export converter first (it fails on some scripted control flow, such as the fast path of a
scripted nn.TransformerEncoderLayer; the error then says to save a .pt2 instead).

Inputs of rank 3 to 5 are made channels last (N...C), the order TFLite's convolutions and the
Android app use; the caller's metadata says so.
"""
from __future__ import annotations

import re
import tempfile
import traceback
import warnings

from ...errors import VqexportError
from ...layouts import last_perm
from ...util.native_output import silenced

ROUTE = "litert-torch"
TS_STEP = "torch's TorchScript to torch.export converter"
_NAMED = re.compile(r"(aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?|'tfl\.[a-z0-9_]+'|torch\.ops\.[A-Za-z0-9_.]+)")


class ConversionError(VqexportError):
    """litert-torch could not convert the model."""


def channels_last(rank: int) -> bool:
    """Whether the converted model takes its input channels last."""
    return 3 <= rank <= 5


def to_flatbuffer(module, shape, lifted=()) -> bytes:
    """The float32 .tflite bytes of `module` run on one input of `shape` (channels first, as torch).

    lifted: names of weights that become graph inputs 1, 2, ... in that order, after the data
    input 0, instead of constants: the converter then cannot fold anything into them (a
    BatchNorm it fuses into the conv before, ConvNeXt's layer scale into the Linear before), and
    the rewrite knows each weight's tensor by its input (export.py). Their tensors in `module`
    are replaced by stand-ins (_stand_ins): pass a module made for the export.
    """
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        module = from_torchscript(module, shape)
    x = torch.zeros(shape, dtype=torch.float32)
    log = None
    try:
        with silenced() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the converter's deprecation notes
            import litert_torch

            weights = _stand_ins(module, lifted)
            if lifted:
                module = _weights_as_inputs(module, tuple(lifted))
            if channels_last(len(shape)):
                module, x = litert_torch.to_channel_last_io(module, args=[0]), x.permute(last_perm(len(shape)))
                module.training = False  # the wrapper's own flag: eval() would recurse into an export
            return litert_torch.convert(module, (x.contiguous(), *weights)).model_content()
    except Exception as e:  # noqa: BLE001 - torch.export and MLIR raise anything; each is worded for the user
        raise ConversionError(_explain(e, ROUTE, log.text if log is not None else "")) from None


def _stand_ins(module, names) -> tuple:
    """Zero-memory sample inputs for the lifted weights; the module's own copies become one-element
    stand-ins. functional_call never reads those copies, but the converter lowers every parameter
    and buffer of the program to a constant and makes it contiguous first: VGG-16's 0.5 GB of
    broadcast placeholders became 0.5 GB of zeros at the conversion's peak. A tied weight's other
    names get the same stand-in, so that they stay tied and the lifted input feeds them all."""
    import torch

    slots: dict[int, list] = {}  # id(tensor) -> every (table, key) that holds it
    for sub in module.modules():
        for table in (sub._parameters, sub._buffers):
            for key, t in table.items():
                if t is not None:
                    slots.setdefault(id(t), []).append((table, key))
    inputs = []
    for name in names:
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        t = owner._parameters[leaf] if leaf in owner._parameters else owner._buffers[leaf]
        inputs.append(torch.zeros((), dtype=t.dtype).expand(t.shape))
        small = torch.zeros(1, dtype=t.dtype)
        small = torch.nn.Parameter(small, requires_grad=False) if isinstance(t, torch.nn.Parameter) else small
        for table, key in slots.get(id(t), []):
            table[key] = small
    return tuple(inputs)


def _weights_as_inputs(module, names: tuple):
    """`module` taking the weights `names` as forward arguments after its input."""
    import torch

    class WeightsAsInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            self.training = False  # its own flag only: the module keeps its mode (an export program's is fixed)

        def forward(self, x, *weights):
            return torch.func.functional_call(self.inner, dict(zip(names, weights, strict=True)), (x,))

    return WeightsAsInputs()


def short_names(tfl) -> None:
    """Name each tensor by its last module and position ("Linear_4", "Linear_4;1") instead of the
    converter's full module path ("litert_torch._convert.to_channel_last_io.ChannelLastIOWrapper/
    torch.nn.modules.container.Sequential_wrapped/torch.nn.modules.linear.Linear_4;"): names are for
    reading the graph, and the paths cost 1-2 KB on a small model (10 % of a compressed MLP's file)."""
    for g in tfl.subgraphs:
        for t in g.tensors:
            name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
            head, sep, tail = name.partition(";")
            short = head.rsplit("/", 1)[-1].rsplit(".", 1)[-1] + (sep + tail if tail.isdigit() else "")
            t.name = short.encode()


def from_torchscript(module, shape):
    """A TorchScript module as a torch.export program's module, sharing its tensors; the one-line
    ConversionError when torch cannot convert it."""
    import torch
    from torch._export.converter import TS2EPConverter

    log = None
    try:
        with silenced() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its "populate state_dict" notes, one per unused buffer
            return TS2EPConverter(module, (torch.zeros(shape, dtype=torch.float32),)).convert().module()
    except Exception as e:  # noqa: BLE001 - the TorchScript converter raises anything; worded for the user
        raise ConversionError(_explain(e, TS_STEP, log.text if log is not None else "")) from None


def _explain(error: Exception, step: str, captured: str) -> str:
    """One line: what failed, where (the operator when the message names one), what to try, the log."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    why = lines[0] if lines else type(error).__name__
    if why.endswith(":") and len(lines) > 1:  # "Verification failed:", "in user code:": the next line says what
        why = f"{why} {lines[1]}"
    named = _NAMED.search(str(error))
    at = f" (at {named.group(0).strip(chr(39))})" if named and named.group(0) not in why else ""
    with tempfile.NamedTemporaryFile("w", prefix="vqexport-litert-", suffix=".log", delete=False) as f:
        f.write(captured)
        f.write("\n" + "".join(traceback.format_exception(error)))
    if step == ROUTE:
        instead = "`vqexport to-onnx` exports the same compressed model without this converter"
    else:  # a TorchScript file: the converter needs torch.export, which the same model often gives directly
        instead = ("save the model with torch.export.save (a .pt2) instead of TorchScript, or use `vqexport to-onnx`, "
                   "which takes TorchScript")
    return (f"{step} could not convert the model: {type(error).__name__}: {why[:300]}{at}. Try: {instead}; "
            f"the converter's full log: {f.name}")
