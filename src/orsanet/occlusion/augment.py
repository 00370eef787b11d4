"""Occlusion as a training augmentation on whole batches, returning the occluder masks so that
they can be handed on to whatever prior the model uses.

    augment = OcclusionAugment({"realistic": 0.5, "square": 0.3, "regions": 0.2}, p=0.5,
                               generator=torch.Generator().manual_seed(0))
    images, masks = augment(images, points, valid)   # (B, 3, H, W), (B, H, W) bool

For each image the batch draws, from ``generator``: whether to occlude (probability ``p``), the
kind (by weight), an area in ``area`` (used by the kinds that take one: ``square_*`` and
``textured``) and a seed; the same generator state gives the same batch. Images whose points are
missing (``points`` None, ``valid`` False or NaN points) are occluded on the average face.
Drawing runs in numpy on the CPU, one image after another, restricted to each shape's box.
(Geometries are drawn as sampled, without the 6-decimal rounding :func:`occlude` applies for its
JSON manifests, so a seed gives the same occluder here up to invisible sub-pixel differences.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .api import GROUPS, KINDS, sample
from .draw import render
from .layout import face_layout
from .textured import MISSING, photos_available


class OcclusionAugment:
    """Occlude a random share ``p`` of each batch with kinds drawn by weight."""

    def __init__(self, kinds: Mapping[str, float] | Sequence[str] = ("realistic", "square"), p: float = 0.5,
                 area: tuple[float, float] = (0.1, 0.4), generator: torch.Generator | None = None):
        weights = dict(kinds) if isinstance(kinds, Mapping) else {k: 1.0 for k in kinds}
        unknown = [k for k in weights if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown occlusion kinds {unknown}; expected names from {sorted(KINDS)}")
        if not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
            raise ValueError("kind weights must be non-negative and not all zero")
        uses_photos = any(k == "textured" or "textured" in GROUPS.get(k, ()) for k, w in weights.items() if w > 0)
        if uses_photos and not photos_available():
            # fail now rather than in the middle of training
            raise ImportError(f"{MISSING}, or choose kinds without 'textured'")
        if not 0.0 <= p <= 1.0 or not 0.0 <= area[0] <= area[1] <= 1.0:
            raise ValueError(f"need 0 <= p <= 1 and 0 <= area[0] <= area[1] <= 1, got p={p}, area={area}")
        self.names = list(weights)
        self.weights = torch.tensor([float(w) for w in weights.values()], dtype=torch.float64)
        self.p, self.area = float(p), (float(area[0]), float(area[1]))
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __call__(self, images: torch.Tensor, points: torch.Tensor | None = None,
                 valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (B, 3, H, W)`` in [0, 1], ``points (B, 468, 2)`` in [0, 1] crop units or
        None, ``valid (B,)`` bool or None -> occluded images (same dtype and device) and masks
        ``(B, H, W)`` bool."""
        b, _, h, w = images.shape
        g = self.generator
        hit = (torch.rand(b, generator=g, dtype=torch.float64) < self.p).tolist()
        choice = torch.multinomial(self.weights, b, replacement=True, generator=g).tolist()
        lo, hi = self.area
        areas = (lo + (hi - lo) * torch.rand(b, generator=g, dtype=torch.float64)).tolist()
        seeds = torch.randint(0, 2 ** 63 - 1, (b,), generator=g).tolist()
        pixels = images.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy().copy()
        masks = np.zeros((b, h, w), bool)
        mesh = None if points is None else points.detach().to("cpu", torch.float64).numpy()
        ok = [True] * b if valid is None else valid.tolist()
        for i in (i for i in range(b) if hit[i]):
            layout = face_layout(mesh[i] if mesh is not None and ok[i] else None)
            geometry = sample(self.names[choice[i]], np.random.default_rng(seeds[i]), layout, (h, w),
                              strict=False, area=areas[i])
            pixels[i], masks[i] = render(pixels[i], geometry["layers"])
        out = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(images.device, images.dtype)
        return out, torch.from_numpy(masks).to(images.device)

    def __repr__(self) -> str:
        kinds = {n: float(w) for n, w in zip(self.names, self.weights)}
        return f"OcclusionAugment(kinds={kinds}, p={self.p}, area={self.area})"
