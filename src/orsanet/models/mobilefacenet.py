"""The 68-point landmark MobileFaceNet ("PyTorch Face Landmark"), ORSANet's sparse geometric prior.

``(B, 3, 112, 112)`` -> conv features ``(B, 512, 7, 7)`` (what ORSANet reads) and, through the
GDC head, 68 ``(x, y)`` points in ``[0, 1]`` crop coordinates (for pictures).
Parameter names follow ``mobilefacenet_model_best.pth.tar``.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv (no bias) -> BN -> PReLU."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """conv (no bias) -> BN, no activation."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """1x1 expand to ``groups`` channels -> depthwise 3x3 (stride) -> 1x1 project, optional residual."""

    def __init__(self, in_c: int, out_c: int, groups: int, stride: int = 2, residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(in_c, groups)
        self.conv_dw = ConvBlock(groups, groups, kernel=3, stride=stride, padding=1, groups=groups)
        self.project = LinearBlock(groups, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    """``num_blocks`` residual DepthWise units at constant width."""

    def __init__(self, channels: int, num_blocks: int, groups: int):
        super().__init__()
        self.model = nn.Sequential(
            *[DepthWise(channels, channels, groups, stride=1, residual=True) for _ in range(num_blocks)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GDCHead(nn.Module):
    """Global depthwise conv head: ``(B, 512, 7, 7)`` -> ``(B, 136)``."""

    def __init__(self, out_features: int = 136):
        super().__init__()
        self.conv_6_dw = LinearBlock(512, 512, kernel=7, groups=512)
        self.conv_6_flatten = nn.Flatten()
        self.linear = nn.Linear(512, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(self.conv_6_flatten(self.conv_6_dw(x))))


class LandmarkMobileFaceNet(nn.Module):
    """MobileFaceNet trunk plus GDC landmark head."""

    def __init__(self, num_points: int = 68):
        super().__init__()
        self.num_points = num_points
        self.conv1 = ConvBlock(3, 64, kernel=3, stride=2, padding=1)
        self.conv2_dw = ConvBlock(64, 64, kernel=3, stride=1, padding=1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128)
        self.conv_3 = Residual(64, 4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256)
        self.conv_4 = Residual(128, 6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512)
        self.conv_5 = Residual(128, 2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.output_layer = GDCHead(2 * num_points)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 112, 112)`` -> ``(B, 512, 7, 7)``."""
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34,
                      self.conv_4, self.conv_45, self.conv_5, self.conv_6_sep):
            x = stage(x)
        return x

    def points(self, features: torch.Tensor) -> torch.Tensor:
        """Conv features ``(B, 512, 7, 7)`` -> landmarks ``(B, num_points, 2)``.

        Trained to give [0, 1] crop coordinates; nothing clamps them (as in the original network).
        """
        return self.output_layer(features).view(features.shape[0], self.num_points, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(points (B, 68, 2), features (B, 512, 7, 7))``."""
        features = self.features(x)
        return self.points(features), features
