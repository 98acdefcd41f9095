"""A conv-heavy mobile-style reference network: depthwise-separable blocks with BatchNorm.

Shaped like MobileNet v1 at 28x28: a 3x3 stride-2 stem (as MobileNet's), then blocks of
depthwise 3x3 + BatchNorm + ReLU6 and pointwise 1x1 + BatchNorm + ReLU6, global average pooling
and one small Linear. The stride-2 stem keeps training on 60,000 images to minutes on 2 cores.
About 96 % of its weights are in convolutions, so dense-only compression cannot shrink it much;
it is the test bed for whole-model compression.
"""
from __future__ import annotations

import torch

# (output channels, stride) of each depthwise-separable block after the 32-channel stem.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1))


class MobileCNN(torch.nn.Sequential):
    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        nn = torch.nn

        def conv_bn(cin, cout, kernel, stride, groups=1):
            return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU6()]

        layers = conv_bn(in_channels, 32, 3, 2)
        cin = 32
        for cout, stride in BLOCKS:
            layers += conv_bn(cin, cin, 3, stride, groups=cin) + conv_bn(cin, cout, 1, 1)
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin, num_classes)]
        super().__init__(*layers)
