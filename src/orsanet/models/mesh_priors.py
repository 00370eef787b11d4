"""Model-side adapters for the face-mesh priors of ``orsanet.priors.face_priors.MeshPriors``.

- landmark prior (raw) ``(B, 468, 3)``: ``x, y`` in [0, 1] crop coordinates and a weight; the
  adapter draws one Gaussian heatmap per facial part at 28 px (brows, eyes, nose, lips, jaw
  line) and encodes it into a ``7 x 7`` grid of landmark tokens for MCM;
- parsing prior (raw) ``(B, 11, 28, 28)``: the soft LaPa-layout map; its adapter is a plain conv
  encoder into the label features SSGM reads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from orsanet.priors.face_priors import PRIOR_SIZE
from orsanet.priors.parsing_map import (FACE_OVAL, LOWER_INNER, LOWER_OUTER, NOSE, SUBJECT_LEFT_BROW, SUBJECT_LEFT_EYE,
                                        SUBJECT_RIGHT_BROW, SUBJECT_RIGHT_EYE, UPPER_INNER, UPPER_OUTER)

# Facial parts drawn as one heatmap channel each (mesh point indices).
LANDMARK_GROUPS = (SUBJECT_RIGHT_BROW, SUBJECT_LEFT_BROW, SUBJECT_RIGHT_EYE, SUBJECT_LEFT_EYE, NOSE,
                   UPPER_OUTER + UPPER_INNER, LOWER_OUTER + LOWER_INNER, FACE_OVAL)


GROUP_POINTS = torch.tensor([i for group in LANDMARK_GROUPS for i in group])
GROUP_OF_POINT = torch.tensor([g for g, group in enumerate(LANDMARK_GROUPS) for _ in group])


def part_heatmaps(landmark_prior: torch.Tensor, size: int = PRIOR_SIZE, sigma: float = 0.8) -> torch.Tensor:
    """``(B, 468, 3)`` landmark prior -> ``(B, len(LANDMARK_GROUPS), size, size)`` part heatmaps.

    Each point is splatted bilinearly (scaled by its weight) into its part's channel, then the
    channels are blurred with a Gaussian of ``sigma`` pixels and clipped to [0, 1].
    """
    b, groups, device = landmark_prior.shape[0], len(LANDMARK_GROUPS), landmark_prior.device
    part = landmark_prior[:, GROUP_POINTS.to(device)].float()  # (B, P, 3)
    x, y, weight = part[..., 0] * size - 0.5, part[..., 1] * size - 0.5, part[..., 2]
    channel = GROUP_OF_POINT.to(device).expand(b, -1) * size * size
    maps = torch.zeros(b, groups * size * size, device=device)
    x0, y0 = x.floor(), y.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            ix, iy = x0 + dx, y0 + dy
            share = (1 - (x - ix).abs()) * (1 - (y - iy).abs()) * weight
            inside = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
            index = channel + (iy.clamp(0, size - 1) * size + ix.clamp(0, size - 1)).long()
            maps.scatter_add_(1, index, share * inside)
    radius = max(1, round(2 * sigma))
    taps = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-taps**2 / (2 * sigma**2))
    kernel = (kernel / kernel.max()).view(1, 1, -1)
    maps = maps.view(b * groups, 1, size, size)
    maps = F.conv2d(maps, kernel.view(1, 1, 1, -1), padding=(0, radius))
    maps = F.conv2d(maps, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return maps.view(b, groups, size, size).clamp(max=1.0)


def conv_encoder(in_channels: int, out_channels: int) -> nn.Sequential:
    """``(B, in, 28, 28)`` -> ``(B, out, 7, 7)``: two stride-2 conv-BN-ReLU and a 1x1 projection."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.Conv2d(64, out_channels, 1),
    )


class LandmarkHeatmapEncoder(nn.Module):
    """Landmark prior ``(B, 468, 3)`` -> landmark tokens ``(B, 49, dim)`` (heatmaps -> conv encoder)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.encoder = conv_encoder(len(LANDMARK_GROUPS), dim)

    def forward(self, landmark_prior: torch.Tensor) -> torch.Tensor:
        return self.encoder(part_heatmaps(landmark_prior)).flatten(2).transpose(1, 2)
