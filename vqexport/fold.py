"""BatchNorm folded into the conv or linear layer before it, before anything is quantized.

A BatchNorm after a conv scales each output channel and shifts it. Left in place, it is folded
into the weight later by whoever converts the model (torch.onnx's eval-mode peephole pass does it
by itself, TFLite converters too), so the weight that runs on the phone is the quantized weight
times gamma/sqrt(var + eps): no longer k distinct values per codebook. Folded here first, the
quantizer sees the folded weight, and the BatchNorm is left as something no converter can fold
into anything but itself:

- an eager module (traced with torch.fx) gets nn.Identity in the BatchNorm's place;
- a TorchScript module or a torch.export program cannot lose a submodule or an op, so its
  BatchNorm is made an exact identity by value: running_mean 0, weight 1, and running_var such
  that (var + eps) is exactly 1.0 in the tensor's precision. A re-fold then multiplies the weight
  by exactly 1.0. A conv that has no bias (and cannot get one, its type being fixed) leaves its
  shift in the BatchNorm's bias, which a re-fold adds to the bias and never to the weight.

A pair is folded only when the layer's output goes to the BatchNorm alone, neither is called
elsewhere (TorchScript: the same pair in both branches of an `if` is one pair), no tensor of
either is shared with another name, and the BatchNorm has running statistics. The copy is
returned in eval mode (folding uses the running statistics, which is what eval runs); a
torch.export program keeps the mode it was exported in, and one exported in training mode folds
nothing. Only exact torch.nn types fold in an eager module (a subclass may compute otherwise).
Everything left unfolded that looked like a candidate, and a model that cannot be traced, is said
in a note: appended to `notes` when the caller passes a list, else warned as a FoldWarning.
"""
from __future__ import annotations

import copy
import functools
import operator
import warnings

import torch
from torch import nn

# layer type -> the BatchNorm that may follow it (the same channel axis: 1 for N,C,... outputs)
_EAGER = {nn.Linear: nn.BatchNorm1d, nn.Conv1d: nn.BatchNorm1d, nn.ConvTranspose1d: nn.BatchNorm1d,
          nn.Conv2d: nn.BatchNorm2d, nn.ConvTranspose2d: nn.BatchNorm2d,
          nn.Conv3d: nn.BatchNorm3d, nn.ConvTranspose3d: nn.BatchNorm3d}

# torch.export's aten ops: the layer ops (their weight is argument 1, bias argument 2) and BatchNorm
_ATEN_LAYERS = {"aten.linear.default": False, "aten.conv1d.default": False, "aten.conv2d.default": False,
                "aten.conv3d.default": False, "aten.conv_transpose1d.input": True,
                "aten.conv_transpose2d.input": True, "aten.conv_transpose3d.input": True}
_ATEN_GROUPS = 6  # conv*(x, w, b, stride, pad, dilation, groups); conv_transpose*(.., out_pad, groups)


class FoldWarning(UserWarning):
    """A BatchNorm that was left unfolded, or a model that could not be searched for any."""


def fold_batchnorm(module: nn.Module, notes: list[str] | None = None) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A copy of `module` with each BatchNorm folded into the layer before it, and the (layer, bn) names folded.

    `module` is never changed. Eager modules, TorchScript modules and torch.export programs'
    modules (ep.module()) are searched; anything else folds nothing and says why in a note.
    """
    said = [] if notes is None else notes
    folded = copy.deepcopy(module)
    if isinstance(folded, torch.fx.GraphModule) and _is_aten_graph(folded.graph):
        pairs = _fold_aten(folded, said)  # its mode is fixed in the graph, and a raw ep.module() refuses eval()
    else:
        folded.eval()
        pairs = (_fold_script if isinstance(folded, torch.jit.ScriptModule) else _fold_eager)(folded, said)
    if notes is None:
        for note in said:
            warnings.warn(note, FoldWarning, stacklevel=2)
    return folded, pairs


# -- the arithmetic --------------------------------------------------------------------------------

@torch.no_grad()
def _scale_shift(mean, var, gamma, beta, eps: float):
    """Per channel, in float64: BatchNorm(y) == y * scale + shift."""
    scale = 1.0 / torch.sqrt(var.double() + eps)
    if gamma is not None:
        scale = scale * gamma.double()
    shift = -mean.double() * scale
    return scale, shift if beta is None else shift + beta.double()


@torch.no_grad()
def _folded_weight(weight, scale, transposed: bool, groups: int):
    """weight * scale on the output-channel axis: 0, or 1 for a transposed conv ([Cin, Cout/groups, ...])."""
    w = weight.double()
    if transposed:
        cin, per = w.shape[0], w.shape[1]
        w = w.reshape(groups, cin // groups, per, *w.shape[2:]) * scale.reshape(groups, 1, per, *[1] * (w.dim() - 2))
        w = w.reshape(weight.shape)
    else:
        w = w * scale.reshape(-1, *[1] * (w.dim() - 1))
    return w.to(weight.dtype)


def neutral_var(eps: float, dtype: torch.dtype) -> float:
    """A running_var v with (v + eps) == 1.0 exactly in `dtype`, whether eps is added in dtype or in float64."""
    one = torch.ones((), dtype=dtype)
    v = torch.tensor(1.0 - eps, dtype=dtype)
    for _ in range(64):
        in_dtype = v + torch.tensor(eps, dtype=dtype)
        in_double = (v.double() + eps).to(dtype)
        if in_dtype == one and in_double == one:
            return float(v)
        v = torch.nextafter(v, one if (in_dtype < one or in_double < one) else -one)
    raise ValueError(f"no running_var makes var + {eps} exactly 1.0 in {dtype}")


@torch.no_grad()
def _neutralize(mean, var, gamma, beta, eps: float, shift=None) -> None:
    """Make a BatchNorm exact identity (plus `shift`, when its layer has no bias to take it), in place."""
    mean.zero_()
    var.fill_(neutral_var(eps, var.dtype))
    if gamma is not None:
        gamma.fill_(1.0)
    if beta is not None and shift is not None:
        beta.copy_(shift.to(beta.dtype))
    elif beta is not None:
        beta.zero_()


def _shared(module) -> set[str]:
    """state_dict names whose tensor is also reachable under another name (tied weights, aliased modules)."""
    by_storage: dict[tuple, list[str]] = {}
    for name, t in module.state_dict(keep_vars=True).items():
        if isinstance(t, torch.Tensor) and t.numel():
            by_storage.setdefault((t.untyped_storage().data_ptr(), t.storage_offset()), []).append(name)
    return {n for names in by_storage.values() if len(names) > 1 for n in names}


def _refusal(layer: str, bn: str, shared: set[str], has_stats: bool, runs_on_stats: bool = True) -> str | None:
    """Why a (layer, BatchNorm) pair may not be folded, or None."""
    if not has_stats:
        return f"{bn} after {layer} not folded: it keeps no running statistics (track_running_stats=False)"
    tied = sorted(n for n in shared if n.startswith((layer + ".", bn + ".")))
    if tied:
        return f"{bn} after {layer} not folded: {tied[0]} is shared with another layer"
    if not runs_on_stats:
        return f"{bn} after {layer} not folded: the graph runs it on batch statistics (training mode)"
    return None


# -- eager modules, through torch.fx ---------------------------------------------------------------

def _fold_eager(model: nn.Module, notes: list[str]) -> list[tuple[str, str]]:
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as e:  # noqa: BLE001 - fx fails in many ways (control flow, unsupported ops); each means "no graph"
        if any(type(m) in _EAGER.values() for m in model.modules()):
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            notes.append(f"BatchNorm not folded: torch.fx cannot trace {type(model).__name__} ({first})")
        return []
    calls: dict[str, int] = {}  # module path -> calls of it, and reads of its tensors by the forward itself
    for node in graph.nodes:
        if node.op in ("call_module", "get_attr"):
            path = node.target if node.op == "call_module" else node.target.rpartition(".")[0]
            calls[path] = calls.get(path, 0) + 1
    names = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), []).append(name)
    shared = _shared(model)
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or type(bn := model.get_submodule(node.target)) not in _EAGER.values():
            continue
        src = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        # Exact types: a subclass may compute something else. Linear+BatchNorm1d assumes (N, C) input,
        # as BatchNorm1d on a Linear's (N, L, C) output would normalize L, not the Linear's channels.
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module"):
            continue
        layer = model.get_submodule(src.target)
        if _EAGER.get(type(layer)) is not type(bn):
            continue
        why = _refusal(src.target, node.target, shared, bn.running_mean is not None)
        if why is None and (len(src.users) > 1 or calls[src.target] > 1 or calls[node.target] > 1):
            why = f"{node.target} after {src.target} not folded: the layer's output or either module is used elsewhere"
        if why is None and (len(names[id(layer)]) > 1 or len(names[id(bn)]) > 1 or bn._forward_hooks
                            or bn._forward_pre_hooks or layer._forward_hooks):
            why = f"{node.target} after {src.target} not folded: a module has another name or a hook"
        if why:
            notes.append(why)
            continue
        _fold_into(layer, bn)
        parent, _, attr = node.target.rpartition(".")
        setattr(model.get_submodule(parent), attr, nn.Identity())
        pairs.append((src.target, node.target))
    return pairs


@torch.no_grad()
def _fold_into(layer, bn) -> None:
    scale, shift = _scale_shift(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    transposed = isinstance(layer, nn.modules.conv._ConvTransposeNd)
    layer.weight.copy_(_folded_weight(layer.weight, scale, transposed, getattr(layer, "groups", 1)))
    bias = shift if layer.bias is None else layer.bias.double() * scale + shift
    if layer.bias is None:
        layer.bias = nn.Parameter(bias.to(layer.weight.dtype), requires_grad=layer.weight.requires_grad)
    else:
        layer.bias.copy_(bias)


# -- TorchScript -----------------------------------------------------------------------------------

# op -> (transposed, index of groups or None); the weight is argument 1 and the bias argument 2 of each
_TS_LAYERS = {"aten::linear": (False, None), "aten::conv1d": (False, 6), "aten::conv2d": (False, 6),
              "aten::conv3d": (False, 6), "aten::conv_transpose1d": (True, 6), "aten::conv_transpose2d": (True, 6),
              "aten::conv_transpose3d": (True, 6), "aten::_convolution": (None, 8)}  # jit.trace's; transposed is arg 6
_SHAPE_ONLY = {"aten::dim", "aten::size"}  # BatchNorm's own input checks read the layer's output this way


def _fold_script(model, notes: list[str]) -> list[tuple[str, str]]:
    """On a copy of forward's graph with every call inlined: scripted and traced modules alike, and a graph
    that torch.onnx.export has already inlined in place (it does, on the module's shared type)."""
    graph = model.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    paths = {next(iter(graph.inputs())).unique(): ""}  # value number -> attribute path from self
    reads: dict[str, int] = {}
    layers, norms = {}, []
    for node in _nodes(graph.block()):
        kind = node.kind()
        if kind == "prim::GetAttr" and node.input().unique() in paths:
            path = ".".join(p for p in (paths[node.input().unique()], node.s("name")) if p)
            paths[node.output().unique()] = path
            reads[path] = reads.get(path, 0) + 1
        elif kind in _TS_LAYERS:
            layers[node.output().unique()] = node
        elif kind == "aten::batch_norm":
            norms.append(node)
    # Every read of a pair's tensors must be in a layer -> BatchNorm chain: a module called in both
    # branches of an `if` (MobileNetV2's residual) appears twice, each time folded the same way.
    chains: dict[tuple[str, str], list] = {}
    for bn_node in norms:
        x, gamma, beta, mean, var, training, _, eps = list(bn_node.inputs())[:8]
        layer_node = layers.get(x.unique())
        if layer_node is None or list(layer_node.inputs())[1].unique() not in paths:
            continue
        weight, bias = list(layer_node.inputs())[1:3]
        tensors = {name: paths.get(v.unique()) for name, v in
                   dict(weight=weight, bias=bias, gamma=gamma, beta=beta, mean=mean, var=var).items()}
        layer_path = tensors["weight"].rpartition(".")[0]
        bn_path = (tensors["mean"] or tensors["var"] or "the BatchNorm").rpartition(".")[0] or "the BatchNorm"
        transposed, groups = _TS_LAYERS[layer_node.kind()]
        if transposed is None:
            transposed = layer_node.inputsAt(6).toIValue()
        groups = 1 if groups is None else layer_node.inputsAt(groups).toIValue()
        users = [u.user for u in x.uses() if u.user.kind() not in _SHAPE_ONLY]
        fixed = (transposed, groups, eps.toIValue(), training.toIValue() if training.node().kind() == "prim::Constant"
                 else False)  # not a constant: BatchNorm's own flag, and the copy is in eval mode
        chains.setdefault((layer_path, bn_path), []).append((tensors, fixed, len(users) == 1))
    shared = _shared(model)
    pairs = []
    for (layer_path, bn_path), found in chains.items():
        tensors, (transposed, groups, eps, training) = found[0][:2]
        got = {name: _attr(model, p) if p else None for name, p in tensors.items()}
        has_bias = isinstance(got["bias"], torch.Tensor)
        why = _refusal(layer_path, bn_path, shared,
                       isinstance(got["mean"], torch.Tensor) and isinstance(got["var"], torch.Tensor),
                       runs_on_stats=training is False and isinstance(eps, float) and isinstance(groups, int)
                       and isinstance(transposed, bool))
        alone = all(ok for *_, ok in found) and all(f[:2] == found[0][:2] for f in found)
        if why is None and (not alone or any(reads[p] != len(found) for name, p in tensors.items()
                                             if isinstance(got[name], torch.Tensor))):
            why = f"{bn_path} after {layer_path} not folded: the layer's output or either module is used elsewhere"
        if why is None and not has_bias and not isinstance(got["beta"], torch.Tensor):
            why = f"{bn_path} after {layer_path} not folded: neither has a bias to hold the shift"
        if why:
            notes.append(why)
            continue
        scale, shift = _scale_shift(got["mean"], got["var"], got["gamma"], got["beta"], eps)
        with torch.no_grad():
            got["weight"].copy_(_folded_weight(got["weight"], scale, transposed, groups))
            if has_bias:
                got["bias"].copy_(got["bias"].double() * scale + shift)
        _neutralize(got["mean"], got["var"], got["gamma"], got["beta"], eps, None if has_bias else shift)
        pairs.append((layer_path, bn_path))
    return pairs


def _attr(model, path: str):
    return functools.reduce(getattr, path.split("."), model)


def _nodes(block):
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)


# -- torch.export programs -------------------------------------------------------------------------

def _is_aten_graph(graph) -> bool:
    return any(n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload) for n in graph.nodes)


def _fold_aten(gm, notes: list[str]) -> list[tuple[str, str]]:
    attr_uses: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            attr_uses[node.target] = attr_uses.get(node.target, 0) + len(node.users)
    shared = _shared(gm)
    pairs = []
    for node in gm.graph.nodes:
        op = str(node.target) if node.op == "call_function" else ""
        if op == "aten.batch_norm.default":
            x, gamma, beta, mean, var, training, _, eps = node.args[:8]
        elif op == "aten._native_batch_norm_legit_no_training.default":
            (x, gamma, beta, mean, var, _, eps), training = node.args[:7], False
            getters = [u for u in node.users if u.target is operator.getitem and u.args[1] == 0]
            if len(getters) != len(node.users):
                continue
        else:
            continue
        src = x if isinstance(x, torch.fx.Node) and str(x.target) in _ATEN_LAYERS else None
        if src is None or src.kwargs:
            continue
        tensors = [src.args[1], *src.args[2:3], gamma, beta, mean, var]
        if not all(t is None or (isinstance(t, torch.fx.Node) and t.op == "get_attr") for t in tensors):
            continue
        layer_path = src.args[1].target.rpartition(".")[0]
        bn_path = (mean.target if mean is not None else "?").rpartition(".")[0]
        why = _refusal(layer_path, bn_path, shared, mean is not None and var is not None, runs_on_stats=not training)
        if why is None and (len(src.users) > 1 or any(attr_uses.get(t.target) != 1 for t in tensors if t is not None)):
            why = f"{bn_path} after {layer_path} not folded: the layer's output or a tensor is used elsewhere"
        if why:
            notes.append(why)
            continue
        get = {t: operator.attrgetter(t.target)(gm) for t in tensors if t is not None}
        weight, bias = get[src.args[1]], get.get(src.args[2]) if len(src.args) > 2 else None
        scale, shift = _scale_shift(get[mean], get[var], get.get(gamma), get.get(beta), eps)
        transposed = _ATEN_LAYERS[str(src.target)]
        groups = src.args[_ATEN_GROUPS] if len(src.args) > _ATEN_GROUPS else 1
        if bias is None and beta is None:
            notes.append(f"{bn_path} after {layer_path} not folded: neither has a bias to hold the shift")
            continue
        with torch.no_grad():
            weight.copy_(_folded_weight(weight, scale, transposed, groups))
            if bias is not None:
                bias.copy_(bias.double() * scale + shift)
        _neutralize(get[mean], get[var], get.get(gamma), get.get(beta), eps, None if bias is not None else shift)
        pairs.append((layer_path, bn_path))
    return pairs
