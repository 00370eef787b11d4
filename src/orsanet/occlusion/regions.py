"""Region-targeted boxes: a filled box over one facial part, placed from the landmarks.

Parts: ``eyes`` and ``brows`` (one box over both), ``nose``, ``mouth`` (outer lips), and the
``upper`` / ``lower`` / ``left`` / ``right`` half of the face, split through the middle of the
face oval's bounding box ("left" = image left). Each box is the part's landmark bounding box
grown by ``margin`` times the face size on every side (halves: only on their outer sides, never
across the split line), drawn hard-edged on whole pixels in a random or given colour.
"""

from __future__ import annotations

import numpy as np

from .layout import Box, FaceLayout

REGIONS = ("eyes", "brows", "nose", "mouth", "upper", "lower", "left", "right")


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def region_box(layout: FaceLayout, region: str, margin: float = 0.05) -> Box:
    """Box ``(x0, y0, x1, y1)`` in crop units covering ``region`` of the face."""
    fw, fh = layout.face_size
    mx, my = margin * fw, margin * fh
    parts = {"eyes": _union(layout.eye_left, layout.eye_right),
             "brows": _union(layout.brow_left, layout.brow_right),
             "nose": layout.nose, "mouth": layout.mouth}
    if region in parts:
        x0, y0, x1, y1 = parts[region]
        return x0 - mx, y0 - my, x1 + mx, y1 + my
    x0, y0, x1, y1 = layout.face
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    halves = {"upper": (x0 - mx, y0 - my, x1 + mx, cy), "lower": (x0 - mx, cy, x1 + mx, y1 + my),
              "left": (x0 - mx, y0 - my, cx, y1 + my), "right": (cx, y0 - my, x1 + mx, y1 + my)}
    if region not in halves:
        raise ValueError(f"unknown region {region!r}; expected one of {REGIONS}")
    return halves[region]


def region_occluder(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, region: str,
           color: tuple[float, float, float] | None = None, margin: float = 0.05) -> dict:
    """Geometry of one box over ``region``; ``color`` RGB in [0, 1], uniform random if None."""
    rgb = [float(c) for c in (rng.uniform(0.0, 1.0, 3) if color is None else color)]
    box = [min(max(t, 0.0), 1.0) for t in region_box(layout, region, margin)]
    return {"kind": region, "params": {"margin": margin, "from_points": layout.from_points},
            "layers": [{"shape": "rect", "box": box, "fill": {"type": "solid", "rgb": rgb}}]}
