"""Where the face parts sit in a crop: from the 468 face-mesh points, or a fixed average face.

Everything is in [0, 1] crop units (x right, y down). "Left" / "right" are the image's left and
right (the subject's right eye is the image-left eye). Boxes are ``(x0, y0, x1, y1)``.

The average face (:data:`DEFAULT_LAYOUT`) is our own estimate of a FER2013-style tight crop:
eyes at y = 0.38, mouth at y = 0.75, the face oval spanning x 0.15..0.85 and y 0.15..1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..priors.parsing_map import (FACE_OVAL, LOWER_OUTER, NOSE, SUBJECT_LEFT_BROW, SUBJECT_LEFT_EYE,
                                  SUBJECT_RIGHT_BROW, SUBJECT_RIGHT_EYE, UPPER_OUTER)

Box = tuple[float, float, float, float]
NUM_POINTS = 468
MIN_FACE = 0.02  # a face outline smaller than this (crop units) is not a fit
# the parts in FaceLayout's field order (image-left before image-right), as one gather index
_PARTS = (SUBJECT_RIGHT_EYE, SUBJECT_LEFT_EYE, SUBJECT_RIGHT_BROW, SUBJECT_LEFT_BROW, NOSE,
          UPPER_OUTER + LOWER_OUTER)
_PART_INDEX = np.concatenate([np.asarray(part) for part in _PARTS])
_PART_STARTS = np.cumsum([0] + [len(part) for part in _PARTS[:-1]])
_OVAL_INDEX = np.asarray(FACE_OVAL)


def _bbox(xy: np.ndarray) -> Box:
    lo, hi = xy.min(0), xy.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _centre(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class FaceLayout:
    """Part boxes and the face outline of one crop, in [0, 1] crop units.

    ``oval`` is the closed face outline ``(K, 2)``, clockwise in the image from the top of the
    forehead (the mesh's FACE_OVAL order). ``from_points`` says whether a mesh was used.
    """

    eye_left: Box
    eye_right: Box
    brow_left: Box
    brow_right: Box
    nose: Box
    mouth: Box
    oval: np.ndarray
    from_points: bool

    # Derived positions are computed once per layout (read-only arrays: safe to share).
    @cached_property
    def face(self) -> Box:
        """Bounding box of the face oval."""
        return _bbox(self.oval)

    @cached_property
    def face_size(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.face
        return x1 - x0, y1 - y0

    @cached_property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        return _frozen(_centre(self.eye_left)), _frozen(_centre(self.eye_right))

    @cached_property
    def eye_distance(self) -> float:
        left, right = self.eye_centres
        return float(np.hypot(*(right - left)))

    @cached_property
    def mouth_centre(self) -> np.ndarray:
        return _frozen(_centre(self.mouth))

    @cached_property
    def nose_tip(self) -> np.ndarray:
        """Just above the bottom of the nose outline (the outline ends at the nostrils)."""
        x0, y0, x1, y1 = self.nose
        return _frozen(np.array([(x0 + x1) / 2, y1 - 0.12 * (y1 - y0)]))

    @cached_property
    def chin(self) -> np.ndarray:
        return _frozen(self.oval[self.oval[:, 1].argmax()])

    @cached_property
    def forehead(self) -> np.ndarray:
        return _frozen(self.oval[self.oval[:, 1].argmin()])

    @cached_property
    def ears(self) -> tuple[np.ndarray, np.ndarray]:
        """The outline's leftmost and rightmost points (about eye height: where the ears are)."""
        return _frozen(self.oval[self.oval[:, 0].argmin()]), _frozen(self.oval[self.oval[:, 0].argmax()])

    def roll(self, size: tuple[int, int]) -> float:
        """Tilt of the eye line in radians, measured in pixels of an ``(H, W)`` crop (y down)."""
        (lx, ly), (rx, ry) = self.eye_centres
        return math.atan2((ry - ly) * size[0], (rx - lx) * size[1])

    @cached_property
    def loop(self) -> np.ndarray:
        """The outline ``(K, 2)`` starting at its highest point: down the right side, then up the left."""
        return _frozen(np.roll(self.oval, -int(self.oval[:, 1].argmin()), axis=0))

    @cached_property
    def _sides(self) -> tuple[np.ndarray, ...]:
        """Left and right halves of the outline as (y, x) arrays sorted by y, for interpolation."""
        bottom = int(self.loop[:, 1].argmax())
        halves = []
        for side in (np.concatenate([self.loop[bottom:], self.loop[:1]]), self.loop[:bottom + 1]):
            order = np.argsort(side[:, 1], kind="stable")
            halves += [side[order, 1], side[order, 0]]
        return tuple(halves)

    def sides_at(self, y: float) -> tuple[float, float]:
        """The outline's left and right x at height ``y`` (clamped to the outline's extent)."""
        left_y, left_x, right_y, right_x = self._sides
        return float(np.interp(y, left_y, left_x)), float(np.interp(y, right_y, right_x))


def _default_oval(count: int = 36) -> np.ndarray:
    """An egg-shaped outline over x 0.15..0.85, y 0.15..1.0, a little narrower at the chin."""
    theta = -math.pi / 2 + 2 * math.pi * np.arange(count) / count  # clockwise from the top
    narrow = 1 - 0.12 * np.clip(np.sin(theta), 0, None) ** 2
    return np.stack([0.5 + 0.35 * np.cos(theta) * narrow, 0.575 + 0.425 * np.sin(theta)], 1)


DEFAULT_LAYOUT = FaceLayout(
    eye_left=(0.255, 0.345, 0.425, 0.415), eye_right=(0.575, 0.345, 0.745, 0.415),
    brow_left=(0.22, 0.27, 0.44, 0.32), brow_right=(0.56, 0.27, 0.78, 0.32),
    nose=(0.42, 0.36, 0.58, 0.64), mouth=(0.37, 0.70, 0.63, 0.80),
    oval=_frozen(_default_oval()), from_points=False)


def face_layout(points: torch.Tensor | np.ndarray | None) -> FaceLayout:
    """Layout from mesh points ``(468, 2+)`` in [0, 1] crop units; :data:`DEFAULT_LAYOUT` when
    ``points`` is None, holds a NaN (no mesh fitted) or is degenerate (face outline under
    :data:`MIN_FACE` of the crop on a side)."""
    if points is None:
        return DEFAULT_LAYOUT
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    if xy.shape[0] != NUM_POINTS:
        raise ValueError(f"expected ({NUM_POINTS}, 2) mesh points, got {tuple(points.shape)}")
    if not np.isfinite(xy).all():
        return DEFAULT_LAYOUT
    oval = xy[_OVAL_INDEX]
    if (oval.max(0) - oval.min(0)).min() < MIN_FACE:
        return DEFAULT_LAYOUT
    parts = xy[_PART_INDEX]  # every part's points, one part after the other
    lo, hi = np.minimum.reduceat(parts, _PART_STARTS), np.maximum.reduceat(parts, _PART_STARTS)
    boxes = [tuple(box) for box in np.concatenate([lo, hi], 1).tolist()]
    return FaceLayout(*boxes, oval=_frozen(oval), from_points=True)
