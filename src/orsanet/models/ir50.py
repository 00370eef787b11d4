"""IR-50: the ArcFace-style improved-residual ResNet used as ORSANet's image backbone.

Only the first three stages run in ORSANet (112 px input -> ``(B, 256, 14, 14)``).
The layout of every parameter follows the public ``ir50.pth`` face-recognition
weights, so that file loads as it is (its unused embedding head is skipped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (output channels, number of units) of the three stages ORSANet uses.
IR50_STAGES: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14))


class BottleneckIR(nn.Module):
    """One improved-residual unit: ``BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN`` plus shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            # A 1x1 max-pool with a stride is plain subsampling.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """IR-50 trunk: ``(B, 3, H, W)`` -> ``(B, 256, 14, 14)``.

    The input is resized to 112 px with nearest interpolation, as the official code does.
    """

    def __init__(self, stages: tuple[tuple[int, int], ...] = IR50_STAGES, input_size: int = 112) -> None:
        super().__init__()
        self.input_size = input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        in_channels = 64
        for out_channels, num_units in stages:
            for index in range(num_units):
                units.append(BottleneckIR(in_channels, out_channels, stride=2 if index == 0 else 1))
                in_channels = out_channels
        self.body = nn.Sequential(*units)
        self.out_channels = in_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=self.input_size)
        return self.body(self.input_layer(x))


def ir50_embedding_head() -> nn.Sequential:
    """The face-embedding head stored in ``ir50.pth`` (and official checkpoints) that ORSANet never runs.

    Built only to count the parameters of the official layout (12.85 M); see ``orsanet.profile``.
    """
    return nn.Sequential(
        nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)
    )
