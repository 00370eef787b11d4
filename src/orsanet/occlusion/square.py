"""The paper's protocol: one square covering a fraction ``area`` of the crop at a uniformly
random position.

Side = ``round(sqrt(area * H * W))`` pixels, clipped to the crop; top-left corner uniform over
all positions that keep the square inside. Two fills:

- ``black``: 0 in pixels (the peers' convention);
- ``mean``: the ImageNet mean (0.485, 0.456, 0.406), the pixel colour that is exactly 0 after
  ImageNet normalisation, i.e. the paper's RandomErasing with value 0 on the normalised tensor.
"""

from __future__ import annotations

import math

import numpy as np

from .layout import FaceLayout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
SQUARE_FILLS = {"black": (0.0, 0.0, 0.0), "mean": IMAGENET_MEAN}
DEFAULT_AREA = (0.1, 0.4)  # drawn uniformly when no ``area`` is given


def square_side(area: float, height: int, width: int) -> int:
    """Side in pixels of a square covering ``area`` of an ``height x width`` crop."""
    if not 0.0 <= area <= 1.0:
        raise ValueError(f"area must be in [0, 1], got {area}")
    return min(int(round(math.sqrt(area * height * width))), height, width)


def square(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, fill: str = "black",
           area: float | None = None) -> dict:
    """Geometry of one square (``layout`` unused: the protocol ignores the face)."""
    if fill not in SQUARE_FILLS:
        raise ValueError(f"square fill must be one of {sorted(SQUARE_FILLS)}, got {fill!r}")
    h, w = size
    area = float(rng.uniform(*DEFAULT_AREA)) if area is None else float(area)
    side = square_side(area, h, w)
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    return {"kind": f"square_{fill}",
            "params": {"area": area, "side_px": side, "fill": fill, "x0_px": x0, "y0_px": y0, "size": [h, w]},
            "layers": [{"shape": "rect", "box": [x0 / w, y0 / h, (x0 + side) / w, (y0 + side) / h],
                        "fill": {"type": "solid", "rgb": list(SQUARE_FILLS[fill])}}]}
