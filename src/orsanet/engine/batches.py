"""Training batches: face pixels with their cached prior geometry, and augmentation on whole batches.

Every split yields pixels framed by the input contract (``(3, S, S)`` in [0, 1]); models with a
prior backend also get each image's cached geometry (``orsanet.priors.cache``). Augmentation runs
on whole batches, so that one random warp moves both the pixels and the geometry:

1. horizontal flip: pixels mirrored, geometry mirrored (``PriorBackend.mirror``);
2. rotation / scale / shift: one affine warp for the pixels (``grid_sample``) and the geometry;
3. occluders: a box of random colour pasted on the pixels, and/or the generators of
   ``orsanet.occlusion`` (realistic occluders, the paper's squares, region boxes) placed from the
   geometry's landmarks; their masks go on to the priors (``PriorBackend.draw(geometry, hidden)``),
   since a prior measured on the hidden face would describe what it cannot see;
4. prior dropout: a fraction of faces get the empty geometry, as happens at test time when an
   occluder makes the prior fail;
5. image dropout (``blank_faces``, in the trainer once the priors are measured): a fraction of faces
   reach the network as a blank image beside their priors, so that the prior paths have to carry
   the expression on their own (the mirror of prior dropout).

Normalisation and drawing the priors are ``FaceModel.inputs``, the same call validation, eval and
predict make.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from orsanet.priors.face_priors import Geometry, PriorBackend


class PriorDataset(Dataset):
    """``dataset[i] -> (pixels (3, S, S), geometry {key: tensor}, target)``: a dataset of contract pixels
    with its cached geometry (one row per image, in the same order)."""

    def __init__(self, dataset: Dataset, geometry: Geometry):
        counts = {len(value) for value in geometry.values()}
        if counts != {len(dataset)}:
            raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: cached priors for {sorted(counts)} images, "
                             f"the split has {len(dataset)}")
        self.dataset, self.geometry = dataset, geometry

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        pixels, target = self.dataset[index]
        return pixels, {key: value[index] for key, value in self.geometry.items()}, target


def split_batch(batch) -> tuple[torch.Tensor, Geometry | None, torch.Tensor]:
    """A loader batch, ``(pixels, targets)`` or ``(pixels, geometry, targets)`` -> (pixels, geometry or None, targets)."""
    return (batch[0], batch[1], batch[2]) if len(batch) == 3 else (batch[0], None, batch[1])


def warps(rotation: float, scale, shift: float) -> bool:
    """Whether these augmentation settings rotate, scale or shift the faces."""
    return bool(rotation or tuple(scale) != (1.0, 1.0) or shift)


def blank_faces(pixels: torch.Tensor, share: float, fill) -> torch.Tensor:
    """``pixels (B, 3, S, S)`` with a random ``share`` of the faces replaced by the constant colour ``fill``
    (3 values: the contract's mean, so that the network sees zeros after normalisation)."""
    chosen = torch.rand(len(pixels), device=pixels.device) < share
    blank = torch.as_tensor(fill, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1).expand_as(pixels)
    return torch.where(chosen.view(-1, 1, 1, 1), blank, pixels)


class BatchAugment:
    """``(pixels (B, 3, S, S), geometry or None)`` -> ``(pixels, geometry, hidden (B, S, S) bool or None)``."""

    def __init__(self, backend: PriorBackend | None, *, flip: bool = True, rotation: float = 0.0,
                 scale: tuple[float, float] = (1.0, 1.0), shift: float = 0.0, occluder_p: float = 0.0,
                 occluder_area: tuple[float, float] = (0.02, 0.1), prior_dropout: float = 0.0,
                 occlusion_kinds: dict[str, float] | None = None, occlusion_p: float = 0.0,
                 occlusion_area: tuple[float, float] = (0.1, 0.4)) -> None:
        """``occluder_*``: random-colour boxes; ``occlusion_*``: ``orsanet.occlusion`` kinds (name -> weight),
        the share of faces they hide and the area range of the kinds that take one."""
        self.backend = backend
        self.occlusion = None
        if occlusion_p > 0:
            from orsanet.occlusion import OcclusionAugment

            self.occlusion = OcclusionAugment(occlusion_kinds or {"realistic": 0.5, "square": 0.3, "regions": 0.2},
                                              p=occlusion_p, area=tuple(occlusion_area))
        self.flip, self.rotation, self.scale, self.shift = flip, rotation, tuple(scale), shift
        self.occluder_p, self.occluder_area, self.prior_dropout = occluder_p, tuple(occluder_area), prior_dropout
        self.warps = warps(rotation, scale, shift)

    def __call__(self, pixels: torch.Tensor, geometry: Geometry | None = None):
        pixels = pixels.float()
        hidden = None
        if self.flip:
            pixels, geometry = self._flip(pixels, geometry)
        if self.warps:
            pixels, geometry = self._warp(pixels, geometry)
        if self.occluder_p > 0:
            pixels, hidden = self._occlude(pixels)
        if self.occlusion is not None:
            pixels, masks = self._realistic(pixels, geometry)
            hidden = masks if hidden is None else hidden | masks
        if self.prior_dropout > 0 and geometry is not None:  # as when the prior fails on a (heavily occluded) face
            keep = torch.rand(len(pixels), device=pixels.device) >= self.prior_dropout
            geometry = self.backend.select(geometry, keep, self.backend.empty(len(pixels), pixels.device))
        return pixels, geometry, hidden

    def _realistic(self, pixels: torch.Tensor, geometry: Geometry | None):
        """``orsanet.occlusion`` occluders placed from the geometry's points (the average face without);
        seeded from the global torch generator, so that a resumed run draws the same occluders."""
        self.occlusion.generator = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
        points = valid = None
        if geometry is not None and self.backend.points(geometry) is not None:
            points, valid = self.backend.points(geometry), self.backend.valid(geometry)
        return self.occlusion(pixels, points, valid)

    def _flip(self, pixels: torch.Tensor, geometry: Geometry | None):
        chosen = torch.rand(len(pixels), device=pixels.device) < 0.5
        pixels = torch.where(chosen.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
        if geometry is None:
            return pixels, None
        return pixels, self.backend.select(self.backend.mirror(geometry), chosen, geometry)

    def _warp(self, pixels: torch.Tensor, geometry: Geometry | None):
        """Output pixel ``u`` (in [-1, 1]) samples input ``A u + t``; the geometry moves accordingly."""
        b, device = len(pixels), pixels.device
        angle = (torch.rand(b, device=device) * 2 - 1) * math.radians(self.rotation)
        zoom = torch.empty(b, device=device).uniform_(*self.scale)
        shift = (torch.rand(b, 2, device=device) * 2 - 1) * 2 * self.shift
        cos, sin = angle.cos() / zoom, angle.sin() / zoom
        matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
        theta = torch.cat([matrix, shift.unsqueeze(-1)], 2)
        grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
        pixels = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return pixels, (self.backend.warp(geometry, matrix, shift) if geometry is not None else None)

    def _occlude(self, pixels: torch.Tensor):
        """Paste one box of random colour (area and aspect random) on a random ``occluder_p`` of the batch."""
        b, _, h, w = pixels.shape
        device = pixels.device
        area = torch.empty(b, device=device).uniform_(*self.occluder_area)
        aspect = torch.exp(torch.empty(b, device=device).uniform_(math.log(0.5), math.log(2.0)))
        box_w, box_h = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
        x0, y0 = torch.rand(b, device=device) * (1 - box_w), torch.rand(b, device=device) * (1 - box_h)
        chosen = torch.rand(b, device=device) < self.occluder_p
        xs = (torch.arange(w, device=device) + 0.5) / w
        ys = (torch.arange(h, device=device) + 0.5) / h
        hidden = ((xs.view(1, 1, -1) >= x0.view(-1, 1, 1)) & (xs.view(1, 1, -1) <= (x0 + box_w).view(-1, 1, 1))
                  & (ys.view(1, -1, 1) >= y0.view(-1, 1, 1)) & (ys.view(1, -1, 1) <= (y0 + box_h).view(-1, 1, 1))
                  & chosen.view(-1, 1, 1))
        colour = torch.rand(b, 3, 1, 1, device=device)
        return torch.where(hidden.unsqueeze(1), colour, pixels), hidden
