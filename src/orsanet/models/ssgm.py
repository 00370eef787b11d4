"""SSGM: the semantic-segmentation-guided module, a SPADE residual block.

The parsing prior modulates the normalised image features channel- and position-wise,
in two SPADE stages, each followed by a spectrally normalised 3x3 conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class SPADE(nn.Module):
    """``InstanceNorm(x) * (1 + gamma(s)) + beta(s)`` with gamma, beta predicted from the label map ``s``."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(channels, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x ``(B, C, h, w)``, labels ``(B, L, h', w')`` -> ``(B, C, h, w)``."""
        dtype = torch.promote_types(x.dtype, torch.float32)  # at least float32, even under autocast
        normalized = self.param_free_norm(x.to(dtype))
        labels = F.interpolate(labels.to(dtype), size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(labels)
        return normalized * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SSGM(nn.Module):
    """SPADE residual block: ``x + conv_1(lrelu(SPADE_1(conv_0(lrelu(SPADE_0(x, s))), s)))``."""

    def __init__(self, channels: int = 512, label_channels: int = 512, hidden: int = 128) -> None:
        super().__init__()
        self.conv_0 = spectral_norm(nn.Conv2d(channels, channels, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(channels, channels, 3, padding=1))
        self.norm_0 = SPADE(channels, label_channels, hidden)
        self.norm_1 = SPADE(channels, label_channels, hidden)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x ``(B, C, h, w)`` image features, labels ``(B, L, h', w')`` -> ``(B, C, h, w)``."""
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, labels), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, labels), 0.2))
        return x + dx
