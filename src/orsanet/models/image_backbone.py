"""Image backbones: images -> a ``(B, D, 7, 7)`` grid of image features."""

from __future__ import annotations

import functools

import torch
from torch import nn

from orsanet.models.ir50 import IR50, IR50_STAGES

# Stages (channels, units) of the improved-residual trunks; "ir18" is a light variant for CPUs and tests.
IR_STAGES = {"ir50": IR50_STAGES, "ir18": ((64, 2), (128, 2), (256, 2))}


class IRGrid(nn.Module):
    """IR-50 (three stages) and the official tokenisation: ``(B, 3, H, W)`` -> ``(B, 512, 7, 7)``.

    Quirk kept from the official code: the ``(B, 256, 14, 14)`` trunk output is reinterpreted in
    memory order as ``(B, 49, 1024)`` (a view, not a spatial patching), projected by
    ``token_proj`` = Linear(1024 -> 512) and laid back out as a 7x7 grid.
    """

    def __init__(self, dim: int = 512, stages: tuple[tuple[int, int], ...] = IR50_STAGES) -> None:
        super().__init__()
        self.trunk = IR50(stages)
        self.token_proj = nn.Linear(1024, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        tokens = self.token_proj(self.trunk(images).reshape(b, 49, 1024))  # (B, 49, D)
        return tokens.transpose(1, 2).reshape(b, -1, 7, 7)


IMAGE_BACKBONES = {name: functools.partial(IRGrid, stages=stages) for name, stages in IR_STAGES.items()}
