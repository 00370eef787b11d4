"""The face-parsing encoder used as ORSANet's dense semantic prior: Swin-B of SegFace.

SegFace (trained for LaPa face parsing) uses torchvision's ``swin_b`` as its encoder.
ORSANet reads the output of the fourth Swin stage (``features[7]``, before the final
norm) as ``(B, 1024, 7, 7)``. The network is built with no weights: nothing is downloaded;
weights come from an official checkpoint or SegFace's ``model_299.pt``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import swin_b


class SwinParserEncoder(nn.Module):
    """``(B, 3, 224, 224)`` normalised images -> ``(B, 1024, 7, 7)`` stage-4 features."""

    out_channels = 1024

    def __init__(self) -> None:
        super().__init__()
        # Only the feature stages are kept: SegFace's final norm, pooling and head are never used.
        self.features = swin_b(weights=None).features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images).permute(0, 3, 1, 2)  # (B, H/32, W/32, C) -> (B, C, H/32, W/32)
