"""Batch-level augmentation, and training batches for models with face-mesh priors.

The mesh points of every image come from the prior cache (``orsanet.priors.cache``). Augmentation
runs on whole batches, so that the one random warp moves both the pixels and the points (models
without mesh priors get the same augmentation, on the pixels alone):

1. horizontal flip: the image is mirrored and the points become their mirror points;
2. rotation / scale / shift: one affine warp for the image (``grid_sample``) and the points;
3. occluder: a box of random colour pasted on the image; both priors are blanked inside it,
   since a mesh fitted to an occluded face would describe what it cannot see;
4. prior dropout: a fraction of faces get the "no mesh fitted" priors, as happens at test time
   when an occluder makes the mesh fail;

then the priors are drawn from the points (``mesh_raw_priors``) and the image is normalised.
Occluder and prior dropout blank only the priors, so they act on pixels alone without points.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from orsanet.models.mesh_priors import mesh_raw_priors


class MeshPriorDataset(Dataset):
    """``dataset[i] -> (image (3, S, S) in [0, 1], points (468, 2), valid (), target)``.

    ``dataset`` must return un-normalised image tensors (``transforms.tensor_transform``);
    ``points``/``presence`` are the cached mesh fits of its images, in the same order.
    """

    def __init__(self, dataset: Dataset, points: torch.Tensor, presence: torch.Tensor, threshold: float = 0.5):
        if len(points) != len(dataset):
            raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: {len(points)} cached priors for "
                             f"{len(dataset)} images")
        self.dataset, self.points = dataset, points
        self.valid = (presence >= threshold) & ~points.isnan().flatten(1).any(1)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        return image, self.points[index], self.valid[index], target


def warps(rotation: float, scale, shift: float) -> bool:
    """Whether these augmentation settings rotate, scale or shift the faces."""
    return bool(rotation or tuple(scale) != (1.0, 1.0) or shift)


class BatchAugment:
    """A ``MeshPriorDataset`` batch -> ``(images, {"landmark_prior", "parsing_prior"}, targets)``;
    a plain ``(images, targets)`` batch (un-normalised images) -> ``(images, {}, targets)``."""

    def __init__(self, flip_permutation: torch.Tensor, mean, std, *, train: bool, flip: bool = True,
                 rotation: float = 0.0, scale: tuple[float, float] = (1.0, 1.0), shift: float = 0.0,
                 occluder_p: float = 0.0, occluder_area: tuple[float, float] = (0.02, 0.1),
                 prior_dropout: float = 0.0) -> None:
        self.flip_permutation = flip_permutation
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.train, self.flip, self.rotation, self.scale, self.shift = train, flip, rotation, tuple(scale), shift
        self.occluder_p, self.occluder_area, self.prior_dropout = occluder_p, tuple(occluder_area), prior_dropout
        self.warps = warps(rotation, scale, shift)

    def __call__(self, batch, device: torch.device):
        batch = [t.to(device, non_blocking=True) for t in batch]
        images, targets = batch[0].float(), batch[-1]
        points, valid = (batch[1].float(), batch[2]) if len(batch) == 4 else (None, None)
        occluders = None
        if self.train:
            if self.flip:
                images, points = self._flip(images, points)
            if self.warps:
                images, points = self._warp(images, points)
            if self.occluder_p > 0:
                images, occluders = self._occlude(images)
            if self.prior_dropout > 0 and valid is not None:  # as when the mesh cannot fit a (heavily occluded) face
                valid = valid & (torch.rand(len(valid), device=valid.device) >= self.prior_dropout)
        images = (images - self.mean.to(device)) / self.std.to(device)
        if points is None:
            return images, {}, targets
        landmark_prior, parsing_prior = mesh_raw_priors(points, valid, occluders)
        return images, {"landmark_prior": landmark_prior, "parsing_prior": parsing_prior}, targets

    def _flip(self, images: torch.Tensor, points: torch.Tensor | None):
        chosen = torch.rand(len(images), device=images.device) < 0.5
        images = torch.where(chosen.view(-1, 1, 1, 1), images.flip(-1), images)
        if points is None:
            return images, None
        mirrored = points[:, self.flip_permutation.to(points.device)].clone()
        mirrored[..., 0] = 1 - mirrored[..., 0]
        return images, torch.where(chosen.view(-1, 1, 1), mirrored, points)

    def _warp(self, images: torch.Tensor, points: torch.Tensor | None):
        """Output pixel ``u`` (in [-1, 1]) samples input ``A u + t``; points (if any) move by ``A^-1 (p - t)``."""
        b, device = len(images), images.device
        angle = (torch.rand(b, device=device) * 2 - 1) * math.radians(self.rotation)
        zoom = torch.empty(b, device=device).uniform_(*self.scale)
        shift = (torch.rand(b, 2, device=device) * 2 - 1) * 2 * self.shift
        cos, sin = angle.cos() / zoom, angle.sin() / zoom
        matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
        theta = torch.cat([matrix, shift.unsqueeze(-1)], 2)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if points is None:
            return images, None
        centred = points * 2 - 1 - shift.unsqueeze(1)  # (B, 468, 2)
        moved = torch.linalg.solve(matrix, centred.transpose(1, 2)).transpose(1, 2)
        return images, (moved + 1) / 2

    def _occlude(self, images: torch.Tensor):
        """Paste one box of random colour (area and aspect random) on a random ``occluder_p`` of the batch."""
        b, _, h, w = images.shape
        device = images.device
        area = torch.empty(b, device=device).uniform_(*self.occluder_area)
        aspect = torch.exp(torch.empty(b, device=device).uniform_(math.log(0.5), math.log(2.0)))
        box_w, box_h = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
        x0, y0 = torch.rand(b, device=device) * (1 - box_w), torch.rand(b, device=device) * (1 - box_h)
        boxes = torch.stack([x0, y0, x0 + box_w, y0 + box_h], 1)
        boxes[torch.rand(b, device=device) >= self.occluder_p] = float("nan")
        xs = (torch.arange(w, device=device) + 0.5) / w
        ys = (torch.arange(h, device=device) + 0.5) / h
        inside = ((xs.view(1, 1, -1) >= boxes[:, 0, None, None]) & (xs.view(1, 1, -1) <= boxes[:, 2, None, None])
                  & (ys.view(1, -1, 1) >= boxes[:, 1, None, None]) & (ys.view(1, -1, 1) <= boxes[:, 3, None, None]))
        colour = torch.rand(b, 3, 1, 1, device=device)
        return torch.where(inside.unsqueeze(1), colour, images), boxes
