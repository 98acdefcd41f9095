"""Port a torch Sequential CNN to Keras (tf_keras) with identical weights, for the tfmot anchor.

    layers, weights = describe_torch(module, (1, 28, 28))     # project venv (torch)
    model = build_keras(layers, weights, (1, 28, 28))          # any venv with tf_keras

The two halves meet through plain JSON and numpy arrays, so the torch side runs in the
project's venv and the Keras side in .venv-tfmot, each with its own libraries.

Layouts: Keras is NHWC. Conv kernels go from torch's [out, in, kh, kw] to [kh, kw, in, out]
(depthwise: [kh, kw, channels, 1]); Dense kernels are the transpose of torch's Linear weight.
A Linear right after a Flatten of a C x H x W map reads its inputs in torch's C,H,W order,
Keras' Flatten yields H,W,C, so that Linear's input columns are permuted to match. Torch's
symmetric conv padding becomes an explicit ZeroPadding2D (Keras' "same" pads a stride-2
conv asymmetrically).
"""
from __future__ import annotations

import numpy as np

SUPPORTED = ("Conv2d", "BatchNorm2d", "ReLU", "ReLU6", "MaxPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout",
             "Linear")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def describe_torch(module, chw: tuple[int, int, int]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The layers of a torch.nn.Sequential as JSON-able dicts, and their weights by name."""
    import torch

    children = list(module.named_children())
    shapes = {}
    x = torch.zeros((1, *chw))
    with torch.no_grad():
        for name, child in children:
            shapes[name] = tuple(x.shape[1:])  # the input shape each layer sees (C, H, W) or (F,)
            x = child(x)
    layers, weights = [], {}
    for name, child in children:
        kind = type(child).__name__
        if kind not in SUPPORTED:
            raise ValueError(f"layer {name}: {kind} has no Keras port here (supported: {', '.join(SUPPORTED)})")
        entry = {"name": name, "kind": kind}
        sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in child.state_dict().items()
              if v.is_floating_point()}
        if kind == "Conv2d":
            if _pair(child.dilation) != (1, 1) or child.padding_mode != "zeros" or isinstance(child.padding, str):
                raise ValueError(f"layer {name}: only zero-padded, undilated convolutions with numeric padding")
            depthwise = child.groups == child.in_channels == child.out_channels
            if child.groups != 1 and not depthwise:
                raise ValueError(f"layer {name}: groups={child.groups} is neither a plain nor a depthwise conv")
            entry.update(filters=child.out_channels, kernel=_pair(child.kernel_size), stride=_pair(child.stride),
                         padding=_pair(child.padding), depthwise=child.groups > 1, bias=child.bias is not None)
        elif kind == "BatchNorm2d":
            entry.update(eps=float(child.eps))
        elif kind == "MaxPool2d":
            if _pair(child.padding) != (0, 0) or child.ceil_mode:
                raise ValueError(f"layer {name}: only unpadded MaxPool2d without ceil_mode")
            entry.update(kernel=_pair(child.kernel_size), stride=_pair(child.stride or child.kernel_size))
        elif kind == "AdaptiveAvgPool2d":
            if _pair(child.output_size) != (1, 1):
                raise ValueError(f"layer {name}: only AdaptiveAvgPool2d(1)")
        elif kind == "Dropout":
            entry.update(rate=float(child.p))
        elif kind == "Linear":
            entry.update(units=child.out_features, bias=child.bias is not None)
        # The feature order a Linear's input arrives in: the C,H,W map a Flatten flattened.
        if kind == "Linear":
            entry["from_map"] = _flattened_map(children, shapes, name)
        layers.append(entry)
        for k, v in sd.items():
            if k != "num_batches_tracked":
                weights[f"{name}.{k}"] = v
    return layers, weights


def _flattened_map(children, shapes, name):
    """(C, H, W) when the Linear `name` reads a Flatten of a map with H*W > 1 directly (through
    Dropouts only), else None: then the feature order is the same in both frameworks."""
    names = [n for n, _ in children]
    i = names.index(name) - 1
    while i >= 0 and type(children[i][1]).__name__ == "Dropout":
        i -= 1
    if i >= 0 and type(children[i][1]).__name__ == "Flatten":
        chw = shapes[names[i]]
        if len(chw) == 3 and chw[1] * chw[2] > 1:
            return [int(c) for c in chw]
    return None


def keras_weights(entry: dict, weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The torch weights of one layer in the order and layout of its Keras layer's set_weights."""
    name, kind = entry["name"], entry["kind"]
    if kind == "Conv2d":
        w = weights[f"{name}.weight"]
        out = [w.transpose(2, 3, 0, 1) if entry["depthwise"] else w.transpose(2, 3, 1, 0)]
        return out + ([weights[f"{name}.bias"]] if entry["bias"] else [])
    if kind == "BatchNorm2d":
        return [weights[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if kind == "Linear":
        return [linear_kernel(weights[f"{name}.weight"], entry.get("from_map"))] + (
            [weights[f"{name}.bias"]] if entry["bias"] else [])
    return []


def linear_kernel(w: np.ndarray, from_map) -> np.ndarray:
    """Keras' Dense kernel [in, out] for torch's Linear weight [out, in].

    from_map (C, H, W): torch's input column c*H*W + h*W + w becomes Keras' row h*W*C + w*C + c.
    """
    if from_map is None:
        return np.ascontiguousarray(w.T)
    c, h, wd = from_map
    out = w.shape[0]
    if w.shape[1] != c * h * wd:
        raise ValueError(f"Linear has {w.shape[1]} inputs, the flattened map {c}x{h}x{wd} has {c * h * wd}")
    return np.ascontiguousarray(w.reshape(out, c, h, wd).transpose(2, 3, 1, 0).reshape(h * wd * c, out))


def torch_weight(kernel: np.ndarray, from_map) -> np.ndarray:
    """The inverse of linear_kernel: a Keras Dense kernel back in torch's Linear layout."""
    if from_map is None:
        return np.ascontiguousarray(kernel.T)
    c, h, wd = from_map
    out = kernel.shape[1]
    return np.ascontiguousarray(kernel.reshape(h, wd, c, out).transpose(3, 2, 0, 1).reshape(out, c * h * wd))


def build_keras(layers: list[dict], weights: dict[str, np.ndarray], chw: tuple[int, int, int]):
    """A tf_keras Sequential computing the same function as the described torch model, on NHWC input."""
    import tf_keras as keras

    c, h, w = chw
    model = keras.Sequential([keras.Input((h, w, c))])
    for e in layers:
        kind, name = e["kind"], e["name"]
        if kind == "Conv2d":
            if any(e["padding"]):
                model.add(keras.layers.ZeroPadding2D(tuple(e["padding"]), name=f"pad_{name}"))
            if e["depthwise"]:
                layer = keras.layers.DepthwiseConv2D(tuple(e["kernel"]), tuple(e["stride"]), "valid",
                                                     use_bias=e["bias"], name=f"dwconv_{name}")
            else:
                layer = keras.layers.Conv2D(e["filters"], tuple(e["kernel"]), tuple(e["stride"]), "valid",
                                            use_bias=e["bias"], name=f"conv_{name}")
        elif kind == "BatchNorm2d":
            layer = keras.layers.BatchNormalization(epsilon=e["eps"], momentum=0.9, name=f"bn_{name}")
        elif kind == "ReLU":
            layer = keras.layers.ReLU(name=f"relu_{name}")
        elif kind == "ReLU6":
            layer = keras.layers.ReLU(max_value=6.0, name=f"relu6_{name}")
        elif kind == "MaxPool2d":
            layer = keras.layers.MaxPooling2D(tuple(e["kernel"]), tuple(e["stride"]), name=f"pool_{name}")
        elif kind == "AdaptiveAvgPool2d":
            layer = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"gap_{name}")
        elif kind == "Flatten":
            layer = keras.layers.Flatten(name=f"flatten_{name}")
        elif kind == "Dropout":
            layer = keras.layers.Dropout(e["rate"], name=f"dropout_{name}")
        elif kind == "Linear":
            layer = keras.layers.Dense(e["units"], use_bias=e["bias"], name=f"dense_{name}")
        else:
            raise ValueError(f"layer {name}: {kind} has no Keras port")
        model.add(layer)
        ws = keras_weights(e, weights)
        if ws:
            layer.set_weights(ws)
    return model
