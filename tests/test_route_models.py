"""Plain-torch networks for the TFLite converter routes (issue 12), and their tests.

The models live here, in a test file, because the issue asks for them to be written in the tests
rather than downloaded; tools/tflite_route.py loads this file by path (it needs only torch, so
it also imports in .venv-litert, which has no pytest).

SamePadMobileNet is a mobile network built as TensorFlow-ported models are: TF's "SAME" padding
done by an explicit F.pad (asymmetric: the extra pixel goes after) before every stride-2
convolution, depthwise-separable inverted residuals, BatchNorm and ReLU6. static=True computes
the pads once from the image size (constants in the traced graph); static=False computes them
from the input's shape in forward, as timm's Conv2dSame does.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one spatial dimension: (before, after); the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    """F.pad to TF SAME for a k x k, stride-s convolution; pads fixed at construction when `size` is given."""

    def __init__(self, kernel: int, stride: int, size: int | None = None):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.pads = None if size is None else self._pads(size, size)

    def _pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        top, bottom = same_pads(h, self.kernel, self.stride)
        left, right = same_pads(w, self.kernel, self.stride)
        return left, right, top, bottom

    def forward(self, x):
        pads = self.pads if self.pads is not None else self._pads(x.shape[-2], x.shape[-1])
        return F.pad(x, pads)


def conv_bn(cin: int, cout: int, kernel: int, stride: int, size: int | None, groups: int = 1, act: bool = True):
    """[SamePad] Conv (no bias) BatchNorm [ReLU6]; stride 1 pads symmetrically inside the conv."""
    layers = []
    if stride > 1:
        layers.append(SamePad(kernel, stride, size))
        pad = 0
    else:
        pad = kernel // 2
    layers += [nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int | None):
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, mid, 1, 1, None)] if expand != 1 else []
        layers += [conv_bn(mid, mid, kernel, stride, size, groups=mid), conv_bn(mid, cout, 1, 1, None, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


# (expand, out channels, repeats, first stride, kernel): MobileNetV2's shape, two 5x5 stages as in V3/EfficientNet
SAMEPAD_STAGES = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
                  (6, 112, 2, 1, 5), (6, 160, 2, 2, 5), (6, 320, 1, 1, 3)]


class SamePadMobileNet(nn.Module):
    """Mobile CNN with TF-style static-same padding, depthwise convs, BatchNorm and ReLU6 (plain torch)."""

    def __init__(self, num_classes: int = 1000, image_size: int = 224, static: bool = True, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        size = image_size if static else None
        layers = [conv_bn(3, 32, 3, 2, size)]
        cin, side = 32, math.ceil(image_size / 2)
        for expand, cout, repeats, stride, kernel in SAMEPAD_STAGES:
            for i in range(repeats):
                s = stride if i == 0 else 1
                layers.append(InvertedResidual(cin, cout, kernel, s, expand, side if static else None))
                cin, side = cout, math.ceil(side / s)
        layers.append(conv_bn(cin, 1280, 1, 1, None))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, num_classes)
        self._init(gen)

    def _init(self, gen):
        # Trained BatchNorms are not identities: random statistics make the converters' folding count.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.data = torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.data = 0.5 + torch.rand(n, generator=gen)
                m.bias.data = 0.1 * torch.randn(n, generator=gen)
                m.running_mean.data = 0.1 * torch.randn(n, generator=gen)
                m.running_var.data = 0.5 + torch.rand(n, generator=gen)
            elif isinstance(m, nn.Linear):
                m.weight.data = torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features)
                m.bias.data = 0.01 * torch.randn(m.bias.shape, generator=gen)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


TRANSFORMER_SHAPE = (1, 16, 64)


def transformer_block(seed: int = 0) -> nn.Module:
    """One nn.TransformerEncoderLayer (d_model 64, 4 heads, GELU, batch_first) for a (1, 16, 64) input."""
    torch.manual_seed(seed)
    return nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0,
                                      activation="gelu", batch_first=True).eval()


# -- tests ---------------------------------------------------------------------------------------
def test_same_pads_match_tf_same():
    # TF SAME: output ceil(n/s); total padding (out-1)*s + k - n, the odd pixel after.
    assert same_pads(224, 3, 2) == (0, 1)
    assert same_pads(225, 3, 2) == (1, 1)
    assert same_pads(112, 5, 2) == (1, 2)
    assert same_pads(7, 3, 1) == (1, 1)
    assert same_pads(4, 1, 2) == (0, 0)
    for n in range(5, 40):
        for k in (1, 3, 5, 7):
            for s in (1, 2, 3):
                a, b = same_pads(n, k, s)
                assert (n + a + b - k) // s + 1 == math.ceil(n / s)
                assert 0 <= b - a <= 1


def test_samepad_mobilenet_structure():
    m = SamePadMobileNet().eval()
    pads = [mod for mod in m.modules() if isinstance(mod, SamePad)]
    depthwise_s2 = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.groups == mod.in_channels > 1
                    and mod.stride == (2, 2)]
    assert len(pads) == 5 and len(depthwise_s2) == 4  # the stem and every stride-2 depthwise conv
    assert all(p.pads is not None and p.pads[1] > p.pads[0] for p in pads)  # asymmetric, fixed at build
    assert all(c.padding == (0, 0) for c in depthwise_s2)
    # 13 blocks: the stem, the expand-1 block's depthwise, 12 x (expand, depthwise), the head
    assert sum(isinstance(mod, nn.ReLU6) for mod in m.modules()) == 1 + 1 + 12 * 2 + 1
    assert sum(isinstance(mod, nn.BatchNorm2d) for mod in m.modules()) == 1 + 2 + 12 * 3 + 1
    bn = next(mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d))
    assert bn.running_var.std() > 0.1 and bn.running_mean.abs().max() > 0.01


@pytest.mark.slow  # builds and runs a MobileNet block twice, about 4 s
def test_samepad_mobilenet_runs_and_static_equals_dynamic():
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    static, dynamic = SamePadMobileNet().eval(), SamePadMobileNet(static=False).eval()
    with torch.no_grad():
        a, b = static(x), dynamic(x)
        feats = static.features(x)
    assert a.shape == (1, 1000) and torch.isfinite(a).all()
    assert feats.shape == (1, 1280, 7, 7)
    assert torch.equal(a, b)
    assert a.std() > 0.1  # not collapsed by the random BatchNorms


def test_route_models_are_seeded():
    x = torch.randn(TRANSFORMER_SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y1, y2, y3 = transformer_block(0)(x), transformer_block(0)(x), transformer_block(1)(x)
    assert y1.shape == TRANSFORMER_SHAPE
    assert torch.equal(y1, y2) and not torch.allclose(y1, y3)
    w1, w2 = SamePadMobileNet(seed=0).classifier.weight, SamePadMobileNet(seed=3).classifier.weight
    assert torch.equal(w1, SamePadMobileNet(seed=0).classifier.weight) and not torch.equal(w1, w2)


def test_litert_requirements_are_pinned_without_tensorflow():
    # tools/tflite_route.py --setup installs exactly this set; an unpinned or TensorFlow line would
    # make the measured route irreproducible or drag the 2 GB stack back in.
    from pathlib import Path

    text = (Path(__file__).parents[1] / "tools" / "litert-requirements.txt").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    pins = dict(ln.split("==", 1) for ln in lines)
    assert len(pins) == len(lines) > 50
    assert pins["litert-torch"] == "0.10.0" and pins["ai-edge-litert"].startswith("2.3.")
    assert pins["torch"] == "2.9.1" and pins["torchao"] == "0.17.0"  # 2.8.0 fails; torchao 0.18 needs torch >= 2.10
    assert not any(name.startswith(("tensorflow", "tf-keras", "onnx2tf")) for name in pins)
