"""Between the IR and torch: decoded state_dicts and networks that hold the decoded weights.

The IR (vqexport.ir) knows nothing of torch; exporters and evaluators that need a network with
the compressed weights decoded come here.
"""
from __future__ import annotations

import copy

import numpy as np

from . import arch
from .errors import LoadError, first_line
from .ir import CompressedModel
from .load import build_arch, build_with_state
from .methods.registry import RAW, decode
from .util.progress import layer_bar


def decoded_state_dict(cm: CompressedModel, quiet: bool = True, copy_raw: bool = True,
                       placeholders: bool = False) -> dict:
    """{name: torch tensor}; copy_raw=False shares the uncompressed tensors' memory (read-only use).

    A tied tensor is decoded once and appears under each of its names, as the same tensor.
    placeholders=True: each compressed tensor is zeros of its shape that take no memory (a
    broadcast scalar), for a caller that supplies those weights itself (the TFLite exporter)."""
    import torch

    bar = layer_bar([(t.name, t.numel) for t in cm.compressed], quiet or placeholders, "decode")
    out = {}
    widened = set(cm.metadata.get("widened") or ())
    for t in cm.tensors:
        if placeholders and t.method != RAW:
            out[t.name] = torch.zeros((), dtype=torch.float32).expand(tuple(t.shape))
            continue
        value = decode(t)  # a new array, except for raw tensors, which are the stored data
        if t.name in widened:  # stored in half precision (--raw-dtype float16), float32 in the model
            value = value.astype(np.float32)
        if t.method == RAW and (copy_raw or not value.flags.writeable):
            value = np.array(value, copy=True)
        out[t.name] = torch.from_numpy(value)
        if t.method != RAW:
            bar.done(t.name)
    bar.close()
    for alias, name in cm.tied.items():
        out[alias] = out[name]
    return out


def to_torch(cm: CompressedModel, model=None, quiet: bool = True, share_raw: bool = False,
             placeholders: bool = False):
    """A copy of `model` with cm's decoded weights (the source is untouched).

    model: a LoadedModel or nn.Module; an architecture string the caller trusts (the user's
    --arch); or None to use the architecture the .vqm names, which is taken only from
    vqexport.arch's allow-list and never imported otherwise. share_raw=True lets the copy use
    the .vqm's uncompressed tensors without copying them (for exporters, which only read them);
    placeholders=True leaves the compressed weights undecoded (see decoded_state_dict).
    """
    import torch

    source = cm.metadata.get("source")
    named = source.get("arch") if isinstance(source, dict) else None
    if model is None and not named:
        raise LoadError("this .vqm does not name an architecture; pass the model it came from with --model, "
                        "or its architecture with --arch")
    if model is None:
        arch.constructor(named, from_file=True)  # refused before any decoding or import
    state = decoded_state_dict(cm, quiet=quiet, copy_raw=not share_raw, placeholders=placeholders)
    folded = bool(cm.metadata.get("folded"))
    try:
        if model is None or isinstance(model, str):
            if not folded:
                return build_with_state(named if model is None else model, state, from_file=model is None).eval()
            model = build_arch(named if model is None else model, state, from_file=model is None)
        src = getattr(model, "module", model)
        if folded:  # the weights are those of the folded network: fold this one the same way first
            from .fold import fold_batchnorm

            src, _ = fold_batchnorm(src, [])
        if isinstance(src, torch.jit.ScriptModule):
            module = copy.deepcopy(src)
            module.load_state_dict(state)
            return module.eval()
        return _copy_with_tensors(src, state).eval()
    except RuntimeError as e:
        raise LoadError(f"the compressed weights do not fit the model: {first_line(e)}") from None


def rebound(module, cm: CompressedModel):
    """A copy of an eager or torch.export module whose tensors are cm's, the compressed ones as
    placeholders (decoded_state_dict), for an exporter that feeds those itself. Nothing is copied:
    not the module's tensors, not cm's raw ones. cm may hold tensors the module lacks (torch's
    TorchScript-to-export conversion drops BatchNorm's unused num_batches_tracked). No folding
    either: it is for a module whose BatchNorms cm's values already neutralise (a TorchScript or
    torch.export one; fold.py)."""
    state = decoded_state_dict(cm, copy_raw=False, placeholders=True)
    try:
        return _copy_with_tensors(module, state, extra_ok=True)
    except RuntimeError as e:
        raise LoadError(f"the compressed weights do not fit the model: {first_line(e)}") from None


def _copy_with_tensors(src, state: dict, extra_ok: bool = False):
    """deepcopy(src) whose parameters and buffers are `state`'s tensors: the source's weights are
    never copied (the memo hands deepcopy the replacement for each original tensor)."""
    import torch

    original = src.state_dict(keep_vars=True)
    only_model, only_vqm = sorted(set(original) - set(state)), sorted(set(state) - set(original))
    if only_model:
        raise RuntimeError(f"the model's tensor {only_model[0]} is not in the .vqm")
    if only_vqm and not extra_ok:
        raise RuntimeError(f"the .vqm's tensor {only_vqm[0]} is not in the model")
    memo = {}
    for name, t in original.items():
        new = state[name]
        if tuple(new.shape) != tuple(t.shape):
            raise RuntimeError(f"{name}: shape {tuple(new.shape)} in the .vqm, {tuple(t.shape)} in the model")
        new = new.to(t.dtype)
        if isinstance(t, torch.nn.Parameter):
            new = torch.nn.Parameter(new, requires_grad=t.requires_grad)
        memo[id(t)] = new
    return copy.deepcopy(src, memo)
