"""Offline priors from the 468-point face mesh (``orsanet.priors``), shaped for ORSANet.

Both priors come from one mesh fit of the face crop:

- landmark prior (raw) ``(B, 468, 3)``: ``x, y`` in [0, 1] crop coordinates and a weight in
  [0, 1] (0 for points hidden by a known occluder, or for every point when no face was fitted);
  the adapter draws one Gaussian heatmap per facial part at 28 px (brows, eyes, nose, lips, jaw
  line) and encodes it into a ``7 x 7`` grid of landmark tokens for MCM;
- parsing prior (raw) ``(B, 11, 28, 28)``: the soft LaPa-layout parsing map drawn from the mesh
  (all background when no face was fitted, all zeros inside an occluder); the adapter encodes it into the label features SSGM reads.

Where training pastes an occluder, the mesh would describe a face that is not visible (it
invents a closed, neutral mouth), so :func:`mesh_raw_priors` blanks both priors inside the
occluder boxes instead.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from orsanet.priors.parsing_map import (FACE_OVAL, LOWER_INNER, LOWER_OUTER, NOSE, SUBJECT_LEFT_BROW, SUBJECT_LEFT_EYE,
                                        SUBJECT_RIGHT_BROW, SUBJECT_RIGHT_EYE, UPPER_INNER, UPPER_OUTER, flip_parsing_map,
                                        parsing_map)

PRIOR_SIZE = 28  # side of the heatmaps and parsing maps
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Facial parts drawn as one heatmap channel each (mesh point indices).
LANDMARK_GROUPS = (SUBJECT_RIGHT_BROW, SUBJECT_LEFT_BROW, SUBJECT_RIGHT_EYE, SUBJECT_LEFT_EYE, NOSE,
                   UPPER_OUTER + UPPER_INNER, LOWER_OUTER + LOWER_INNER, FACE_OVAL)


def mesh_raw_priors(points: torch.Tensor, valid: torch.Tensor, occluders: torch.Tensor | None = None,
                    size: int = PRIOR_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Mesh points of face crops -> (landmark prior ``(B, 468, 3)``, parsing prior ``(B, 11, size, size)``).

    points ``(B, 468, 2)`` in [0, 1] crop coordinates (NaN allowed where ``valid`` is False);
    valid ``(B,)`` bool; occluders ``(B, 4)`` optional boxes ``x0, y0, x1, y1`` in [0, 1] (NaN
    rows = none) inside which both priors are blanked.
    """
    valid = valid.to(points.device).bool() & ~points.isnan().flatten(1).any(1)
    clean = torch.where(valid.view(-1, 1, 1), points, torch.zeros_like(points))
    weight = valid.view(-1, 1).float().expand(-1, points.shape[1]).clone()
    raster = 4 * size
    parsing = parsing_map(torch.where(valid.view(-1, 1, 1), points, torch.full_like(points, float("nan"))) * raster,
                          (raster, raster), size=size, raster=raster)
    if occluders is not None:
        box = occluders.to(points.device).float()
        has_box = ~box.isnan().any(1)
        x0, y0, x1, y1 = (torch.nan_to_num(box[:, i], nan=-1.0).view(-1, 1) for i in range(4))
        inside = (clean[..., 0] >= x0) & (clean[..., 0] <= x1) & (clean[..., 1] >= y0) & (clean[..., 1] <= y1)
        weight = weight * ~(inside & has_box.view(-1, 1))
        centres = (torch.arange(size, device=points.device, dtype=torch.float32) + 0.5) / size
        in_x = (centres.view(1, -1) >= x0) & (centres.view(1, -1) <= x1)  # (B, size)
        in_y = (centres.view(1, -1) >= y0) & (centres.view(1, -1) <= y1)
        blank = (in_y.unsqueeze(2) & in_x.unsqueeze(1)) & has_box.view(-1, 1, 1)  # (B, size, size)
        parsing = parsing * ~blank.unsqueeze(1)
    return torch.cat([clean, weight.unsqueeze(-1)], -1), parsing


@functools.cache
def mesh_flip_permutation() -> torch.Tensor:
    """``(468,)``: index of the mesh point that mirrors each point (from the shipped mesh weights)."""
    from orsanet.priors.face_mesh import FaceMesh

    return FaceMesh(batch_size=1).flip_permutation.clone()


def mirror_raw_priors(landmark_prior: torch.Tensor, parsing_prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw priors of the horizontally mirrored crops: ``(B, 468, 3)``, ``(B, 11, S, S)`` -> same shapes.

    Points swap with their mirror points and ``x -> 1 - x``; the parsing map flips and its left and
    right brow and eye channels swap.
    """
    mirrored = landmark_prior[:, mesh_flip_permutation().to(landmark_prior.device)].clone()
    mirrored[..., 0] = torch.where(mirrored[..., 2] > 0, 1 - mirrored[..., 0], mirrored[..., 0])
    return mirrored, flip_parsing_map(parsing_prior)


_GROUP_POINTS = torch.tensor([i for group in LANDMARK_GROUPS for i in group])
_GROUP_OF_POINT = torch.tensor([g for g, group in enumerate(LANDMARK_GROUPS) for _ in group])


def part_heatmaps(landmark_prior: torch.Tensor, size: int = PRIOR_SIZE, sigma: float = 0.8) -> torch.Tensor:
    """``(B, 468, 3)`` landmark prior -> ``(B, len(LANDMARK_GROUPS), size, size)`` part heatmaps.

    Each point is splatted bilinearly (scaled by its weight) into its part's channel, then the
    channels are blurred with a Gaussian of ``sigma`` pixels and clipped to [0, 1].
    """
    b, groups, device = landmark_prior.shape[0], len(LANDMARK_GROUPS), landmark_prior.device
    part = landmark_prior[:, _GROUP_POINTS.to(device)].float()  # (B, P, 3)
    x, y, weight = part[..., 0] * size - 0.5, part[..., 1] * size - 0.5, part[..., 2]
    channel = _GROUP_OF_POINT.to(device).expand(b, -1) * size * size
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


class MeshPriorExtractor:
    """Fits the face mesh on normalised face crops ``(B, 3, S, S)`` and returns both raw priors.

    Not an ``nn.Module`` on purpose: the mesh weights ship with the package, so they stay out of
    ORSANet checkpoints. Built on first use and moved to the images' device.
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, presence_threshold: float = 0.5) -> None:
        self.mean, self.std, self.threshold = mean, std, presence_threshold
        self.mesh = None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from orsanet.priors.face_mesh import FaceMesh

        if self.mesh is None:
            self.mesh = FaceMesh()
        self.mesh.to(images.device)
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        pixels = ((images.float() * std + mean).clamp(0, 1) * 255).round().permute(0, 2, 3, 1)  # (B, S, S, 3)
        fit = self.mesh.fit_crops(list(pixels), refine=1)
        points = fit.normalized([tuple(images.shape[-2:])] * len(images))[..., :2]
        return mesh_raw_priors(points, fit.found(self.threshold))
