"""The weight tensors of a network that can be compressed, and the type of each.

Types, as users name them (--types): conv (Conv1d, Conv2d, Conv3d, grouped and depthwise
included, and ConvTranspose), linear (Linear, the output projection of MultiheadAttention
included), embedding (Embedding), attention (the packed input projection of
MultiheadAttention, in_proj_weight). Module types are read from eager modules and TorchScript
(whose submodules keep their original class name); a torch.export program has none left, so
there a weight's type is guessed from its rank (2-D linear, 3-D to 5-D conv).
"""
from __future__ import annotations

TYPES = ("conv", "linear", "embedding", "attention")
_CLASSES = {"Conv1d": "conv", "Conv2d": "conv", "Conv3d": "conv", "ConvTranspose1d": "conv",
            "ConvTranspose2d": "conv", "ConvTranspose3d": "conv", "Linear": "linear",
            "NonDynamicallyQuantizableLinear": "linear", "Embedding": "embedding"}


def weight_tensors(module) -> dict[str, str]:
    """{state_dict key: type} of the weights of `module` that a method can take, in state_dict order."""
    found = {}
    typed = False
    for mname, mod in module.named_modules():
        kind = getattr(mod, "original_name", type(mod).__name__)
        prefix = f"{mname}." if mname else ""
        if kind in _CLASSES:
            typed = True
            found[prefix + "weight"] = _CLASSES[kind]
        elif kind == "MultiheadAttention":
            typed = True
            found[prefix + "in_proj_weight"] = "attention"  # out_proj is a Linear, found on its own
    state = module.state_dict()
    if not typed:  # an exported program: no module types are left
        found = {k: ("linear" if v.ndim == 2 else "conv") for k, v in state.items()
                 if k.endswith(".weight") and 2 <= v.ndim <= 5}
    return {k: found[k] for k in state if k in found and state[k].ndim >= 2 and state[k].is_floating_point()}


def dense_layer_names(module) -> list[str]:
    """The linear weights: what vqexport compressed before whole-model compression (--types linear)."""
    return [k for k, kind in weight_tensors(module).items() if kind == "linear"]
