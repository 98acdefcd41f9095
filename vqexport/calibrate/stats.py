"""What each compressed layer sees: the mean and second moment of its inputs on calibration images.

For a Linear the inputs are its input vectors; for a Conv1d / Conv2d, the im2col patches, one
column of the layer's m x n matrix per patch element, so that the layer's output error on those
inputs is (W - W') x for every patch x. A grouped conv has one set of statistics per conv group,
since each group of output channels sees its own input channels.

Eager modules are observed with forward hooks. TorchScript and torch.export programs have no
Python modules to hook: their graph is run by an fx interpreter that watches the linear and
convolution calls, matching each call's weight to its state_dict name by storage.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

BATCH = 100
MAX_COLUMNS = 8192  # E[x x^T] is n x n float64: 512 MiB at this width (VGG-16's fc6 would need 5 GiB)


@dataclass
class InputStats:
    """Sums over the calibration inputs of one layer: count, sum x [G, n], sum x x^T [G, n, n]
    (G conv groups, n columns of the layer's matrix). float64, since a million patches are summed."""

    count: int
    total: np.ndarray
    outer: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.count, 1)

    @property
    def second(self) -> np.ndarray:
        """E[x x^T] per conv group: the layer's output error is tr((W - W') E[x x^T] (W - W')^T)."""
        return self.outer / max(self.count, 1)


class _Collector:
    def __init__(self, names: set[str]):
        self.names, self.stats = names, {}

    def linear(self, name: str, x) -> None:
        self._add(name, x.reshape(-1, x.shape[-1])[:, None, :])



    def conv(self, name: str, x, weight, stride, padding, dilation, groups) -> None:
        import torch

        nd = weight.ndim - 2
        if nd == 1:  # a Conv1d's patches are a Conv2d's of height 1
            x, weight = x.unsqueeze(-2), weight.unsqueeze(-2)
            stride, padding, dilation = (1, *_pair(stride, 1)), (0, *_pair(padding, 1)), (1, *_pair(dilation, 1))
        elif nd != 2:
            raise _Unsupported(f"{nd}-D convolution")
        kernel = tuple(weight.shape[2:])
        padding = _padding(padding, kernel, _pair(dilation, 2), _pair(stride, 2))
        patches = torch.nn.functional.unfold(x, kernel, dilation=_pair(dilation, 2), padding=padding,
                                             stride=_pair(stride, 2))  # [B, C * kh * kw, L], channel-major
        b, cols, length = patches.shape
        per = cols // groups
        self._add(name, patches.reshape(b, groups, per, length).permute(0, 3, 1, 2).reshape(-1, groups, per))

    def _add(self, name: str, x) -> None:
        """x: [N, G, n] inputs of one batch."""
        import torch

        if x.shape[-1] > MAX_COLUMNS:
            raise _Unsupported(f"{x.shape[-1]} input columns (at most {MAX_COLUMNS}: their second moment is "
                               "n x n)")
        x = x.detach().float()
        outer = torch.einsum("bgi,bgj->gij", x, x).double().numpy()
        total = x.sum(0).double().numpy()
        have = self.stats.get(name)
        if have is None:
            self.stats[name] = InputStats(x.shape[0], total, outer)
        else:
            have.count += x.shape[0]
            have.total += total
            have.outer += outer


class _Unsupported(Exception):
    """A layer whose inputs this module cannot turn into its matrix's columns."""


def _pair(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _padding(padding, kernel, dilation, stride):
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if any(s != 1 for s in stride) or any((d * (k - 1)) % 2 for k, d in zip(kernel, dilation, strict=True)):
            raise _Unsupported("'same' padding that is not symmetric")
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
    return _pair(padding, 2)


def collect(module, x: np.ndarray, names, progress=None) -> tuple[dict[str, InputStats], dict[str, str]]:
    """({weight name: InputStats}, {weight name: why not}) for the named weights, over the images x
    (channels first, already normalised). The module is run in eval mode, batch by batch."""
    import torch

    col = _Collector(set(names))
    skipped: dict[str, str] = {}
    run = _hooked if _is_eager(module) else _interpreted
    with torch.no_grad():
        run(module, x, col, skipped, progress)
    missing = {n: "not called as a linear or convolution on the calibration images"
               for n in names if n not in col.stats and n not in skipped}
    return col.stats, {**skipped, **missing}


def _is_eager(module) -> bool:
    import torch

    return not isinstance(module, (torch.jit.ScriptModule, torch.fx.GraphModule))


def _batches(x: np.ndarray, progress, size: int = BATCH):
    import torch

    for a in range(0, len(x), size):
        yield torch.from_numpy(np.ascontiguousarray(x[a:a + size]))
        if progress is not None:
            progress(min(len(x), a + size))


def _hooked(module, x, col: _Collector, skipped: dict, progress) -> None:
    import torch

    hooks = []
    for mname, mod in module.named_modules():
        name = f"{mname}.weight" if mname else "weight"
        if name not in col.names:
            continue
        if isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_hook(lambda m, i, o, n=name: _guard(skipped, n, col.linear, n, i[0])))
        elif isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d)) and mod.padding_mode == "zeros":
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, n=name: _guard(skipped, n, col.conv, n, i[0], m.weight, m.stride, m.padding,
                                               m.dilation, m.groups)))
        else:
            skipped[name] = f"its {type(mod).__name__} is not a Linear, Conv1d or Conv2d with zero padding"
    was = module.training
    module.eval()
    try:
        for batch in _batches(x, progress):
            module(batch)
    finally:
        for h in hooks:
            h.remove()
        module.train(was)


def _guard(skipped: dict, name: str, fn, *args) -> None:
    if name in skipped:
        return
    try:
        fn(*args)
    except _Unsupported as e:
        skipped[name] = f"calibration does not handle {e}"


def _interpreted(module, x, col: _Collector, skipped: dict, progress) -> None:
    """Run the graph with the linear and convolution calls watched. Converted and exported graphs are
    specialised to their batch size, so TorchScript is converted once per batch size it is fed, and
    an exported program is fed batches of its own size (the images left over are not used)."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        full, rest = divmod(len(x), BATCH)
        parts = [(BATCH, x[:full * BATCH])] if full else []
        parts += [(rest, x[full * BATCH:])] if rest else []
        for size, xs in parts:
            _watch(_converted(module, (size, *x.shape[1:])), xs, size, col, skipped, progress)
        return
    size = _fixed_batch(module) or BATCH
    if len(x) < size:
        raise ConfigError(f"the model's graph takes batches of {size}; --calib-images must be at least that")
    _watch(module, x[:len(x) - len(x) % size], size, col, skipped, progress)


def _converted(module, shape):
    from ..formats.tflite.convert import ConversionError, from_torchscript

    try:
        return from_torchscript(module, shape)
    except ConversionError as e:
        raise ConfigError(f"--calib needs to run the model's layers one by one: {e}") from None


def _fixed_batch(module) -> int | None:
    for node in module.graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if val is not None and getattr(val, "ndim", 0) and isinstance(val.shape[0], int):
                return int(val.shape[0])
            return None
    return None


def _watch(module, x, batch: int, col: _Collector, skipped: dict, progress) -> None:
    import torch

    by_storage = {_key(v): n for n, v in module.state_dict(keep_vars=True).items() if n in col.names}
    aten = torch.ops.aten
    linear, convs = {aten.linear.default}, {aten.conv1d.default, aten.conv2d.default, aten.convolution.default}

    class Watch(torch.fx.Interpreter):
        def call_function(self, target, args, kwargs):
            if target in linear | convs and len(args) > 1 and isinstance(args[1], torch.Tensor):
                name = by_storage.get(_key(args[1]))
                if name is not None:
                    if target in linear:
                        _guard(skipped, name, col.linear, name, args[0])
                    else:
                        stride, padding, dilation = (list(args[3:6]) + [1, 0, 1][len(args[3:6]):])
                        groups = args[8] if target == aten.convolution.default else (args[6] if len(args) > 6 else 1)
                        if target == aten.convolution.default and args[6]:
                            skipped.setdefault(name, "calibration does not handle transposed convolutions")
                        else:
                            _guard(skipped, name, col.conv, name, args[0], args[1], stride, padding, dilation,
                                   groups)
            return super().call_function(target, args, kwargs)

    watch = Watch(module)
    for batch_x in _batches(x, progress, batch):
        watch.run(batch_x)


def _key(t) -> tuple:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
