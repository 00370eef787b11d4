"""Objects textured from real photographs: a random patch of a scikit-image sample photo laid
into an ellipse or a rounded polygon anywhere on the face.

Only photos shipped inside the scikit-image wheel are used, read straight from its ``data``
folder (never through ``skimage.data``'s fetcher, so nothing is ever downloaded), and only
lossless PNGs, so a rebuild decodes the same pixels on any machine (``rocket.jpg`` and
``astronaut`` - a face - are left out). Each photo's SHA-256 prefix goes into the geometry; a
rebuild against a different file logs a warning. Photos are decoded once and kept as a pyramid
of 2x reductions, sampled bilinearly at the level nearest one photo pixel per crop pixel.

scikit-image is optional: without it, this kind raises an ImportError naming the extra.
"""

from __future__ import annotations

import hashlib
import logging
import math
from functools import cache
from pathlib import Path

import numpy as np

from .canvas import pick
from .layout import FaceLayout

logger = logging.getLogger(__name__)

PHOTOS = ("coffee", "chelsea", "camera", "coins", "brick", "grass", "gravel")
MISSING = "textured occluders need scikit-image (pip install 'scikit-image>=0.22')"


def photos_available() -> bool:
    """Whether scikit-image and its shipped sample photos are installed."""
    try:
        _data_dir()
    except ImportError:
        return False
    return True


def _data_dir() -> Path:
    try:
        import skimage.data
    except ImportError:
        raise ImportError(MISSING) from None
    return Path(skimage.data.__file__).parent


@cache
def _pyramid(name: str) -> tuple[tuple[np.ndarray, ...], str]:
    """Photo ``name`` as float32 RGB levels ``(h, w, 3)`` in [0, 1], each half the last, and
    the SHA-256 prefix of its file."""
    from PIL import Image

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; expected one of {PHOTOS}")
    path = _data_dir() / f"{name}.png"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not in this scikit-image install (photos are never downloaded)")
    raw = path.read_bytes()
    img = Image.open(path).convert("RGB")
    levels = [img]
    while min(levels[-1].size) >= 16:
        levels.append(levels[-1].reduce(2))
    arrays = tuple(np.asarray(level, dtype=np.float32) / np.float32(255) for level in levels)
    return arrays, hashlib.sha256(raw).hexdigest()[:16]


def photo_shape(name: str) -> tuple[int, int]:
    """``(height, width)`` of photo ``name`` in pixels."""
    return _pyramid(name)[0][0].shape[:2]


def sample_photo(fill: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours ``(hh, ww, 3)`` of a photo fill at local coordinates (u, v): [-1, 1] spans
    ``fill["box"]`` (x0, y0, x1, y1 in [0, 1] of the photo), times ``fill["gain"]``."""
    levels, sha = _pyramid(fill["name"])
    if fill.get("sha", sha) != sha:
        logger.warning("photo %s differs from the one the geometry was made with (%s != %s)",
                       fill["name"], sha, fill["sha"])
    x0, y0, x1, y1 = fill["box"]
    full_h, full_w = levels[0].shape[:2]
    step = 0.0  # change of u per crop pixel, for the pyramid level
    if u.shape[1] > 1:
        step = math.hypot(float(u[0, 1] - u[0, 0]), float(v[0, 1] - v[0, 0]))
    ratio = step / 2 * (x1 - x0) * full_w  # photo pixels per crop pixel
    level = levels[min(max(int(math.floor(math.log2(ratio))), 0) if ratio > 1 else 0, len(levels) - 1)]
    h, w = level.shape[:2]
    px = (x0 + (u + 1) / 2 * (x1 - x0)) * np.float32(w) - 0.5
    py = (y0 + (v + 1) / 2 * (y1 - y0)) * np.float32(h) - 0.5
    px, py = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    ix, iy = np.minimum(px.astype(np.int64), w - 2), np.minimum(py.astype(np.int64), h - 2)
    fx, fy = (px - ix)[..., None], (py - iy)[..., None]
    top = level[iy, ix] * (1 - fx) + level[iy, ix + 1] * fx
    bottom = level[iy + 1, ix] * (1 - fx) + level[iy + 1, ix + 1] * fx
    return (top * (1 - fy) + bottom * fy) * np.asarray(fill.get("gain", (1.0, 1.0, 1.0)), np.float32)


def textured(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, area: float | None = None,
             photo: str | None = None, shape: str | None = None, blur: float | None = None) -> dict:
    """An object covering about ``area`` of the crop (default 0.08..0.3), centred anywhere on
    the face, of a random photo patch, rotation, colour gain and edge blur."""
    h, w = size
    scale = math.sqrt(h * w)
    name = pick(rng, PHOTOS) if photo is None else photo
    photo_h, photo_w = photo_shape(name)
    shape = pick(rng, ["ellipse", "polygon"]) if shape is None else shape
    area = float(rng.uniform(0.08, 0.3)) if area is None else float(area)
    aspect = float(rng.uniform(0.6, 1.6))  # width / height of the object
    angle = float(rng.uniform(0, 2 * math.pi))
    x0, y0, x1, y1 = layout.face
    centre = [x0 + (x1 - x0) * float(rng.uniform(0.1, 0.9)), y0 + (y1 - y0) * float(rng.uniform(0.1, 0.9))]
    blur = float(rng.uniform(0.004, 0.03)) if blur is None else float(blur)
    if shape == "ellipse":  # pi * rx * ry = area * H * W
        ry = math.sqrt(area * h * w / (math.pi * aspect))
        rx, polygon, grow = aspect * ry, None, 0.0
    elif shape == "polygon":  # a wobbly convex-ish polygon, rounded, scaled to the area
        n = int(rng.integers(5, 9))
        theta = np.sort(rng.uniform(0, 2 * math.pi, n) * 0.3 + np.arange(n) * 2 * math.pi / n)
        radius = rng.uniform(0.75, 1.0, n)
        unit = np.stack([aspect * radius * np.cos(theta), radius * np.sin(theta)], 1)
        nxt = np.roll(unit, -1, axis=0)
        unit_area = 0.5 * abs(float(np.sum(unit[:, 0] * nxt[:, 1] - nxt[:, 0] * unit[:, 1])))  # shoelace
        ry = math.sqrt(area * h * w / unit_area)
        rx, grow = aspect * ry, 0.06 * ry
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        pts = unit * (ry - grow) @ rot.T + np.asarray(centre) * (w, h)
        polygon = (pts / (w, h)).tolist()
    else:
        raise ValueError(f"textured shape must be ellipse or polygon, got {shape!r}")
    # the photo patch: as wide as the object relative to its height, 20..60 % of the photo
    side = float(rng.uniform(0.2, 0.6)) * min(photo_h, photo_w)
    pw, ph = min(side * math.sqrt(aspect), photo_w), min(side / math.sqrt(aspect), photo_h)
    px0, py0 = float(rng.uniform(0, photo_w - pw)), float(rng.uniform(0, photo_h - ph))
    fill = {"type": "photo", "name": name, "sha": _pyramid(name)[1],
            "box": [px0 / photo_w, py0 / photo_h, (px0 + pw) / photo_w, (py0 + ph) / photo_h],
            "gain": rng.uniform(0.75, 1.25, 3).tolist(), "rim": [0.03, float(rng.uniform(0.0, 0.3))]}
    frame = {"c": centre, "h": [rx / w, ry / h], "angle": angle}
    if polygon is None:
        layer = {"shape": "ellipse", "c": centre, "r": [rx / w, ry / h], "angle": angle}
    else:
        layer = {"shape": "polygon", "pts": polygon, "round": grow / scale, "frame": frame}
    layer.update(fill=fill, blur=blur)
    return {"kind": "textured", "params": {"photo": name, "shape": shape, "area": area}, "layers": [layer]}
