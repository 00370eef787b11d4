"""Shared tools of the procedural occluders: a pixel-space layer builder and colour helpers."""

from __future__ import annotations

import colorsys
import math

import numpy as np


class Canvas:
    """Pixel <-> crop-unit conversions for one crop size, and layer builders taking pixels
    (the layers are those of :mod:`~orsanet.occlusion.draw`, in crop units)."""

    def __init__(self, size: tuple[int, int], blur: float):
        self.h, self.w = size
        self.scale = math.sqrt(self.h * self.w)
        self.blur = blur

    def px(self, p) -> np.ndarray:
        """Crop units ``(..., 2)`` -> pixels."""
        return np.asarray(p, np.float64) * (self.w, self.h)

    def unit(self, p) -> list:
        """Pixels ``(..., 2)`` -> crop units, as JSON-ready lists."""
        return (np.asarray(p, np.float64) / (self.w, self.h)).tolist()

    def ellipse(self, c, rx: float, ry: float, angle: float, fill: dict, **extra) -> dict:
        return {"shape": "ellipse", "c": self.unit(c), "r": [rx / self.w, ry / self.h], "angle": angle,
                "fill": fill, "blur": self.blur, **extra}

    def polygon(self, pts, fill: dict, round_px: float = 0.0, **extra) -> dict:
        return {"shape": "polygon", "pts": self.unit(pts), "round": round_px / self.scale, "fill": fill,
                "blur": self.blur, **extra}

    def polyline(self, pts, r_px, fill: dict, **extra) -> dict:
        r = np.maximum(np.asarray(r_px, np.float64), 0.5) / self.scale  # at least a pixel wide
        return {"shape": "polyline", "pts": self.unit(pts), "r": r.tolist(), "fill": fill, "blur": self.blur, **extra}

    def frame(self, c, hx: float, hy: float, angle: float) -> dict:
        """A pattern frame centred at pixel ``c`` with pixel half-sizes along its rotated axes."""
        return {"c": self.unit(c), "h": [hx / self.w, hy / self.h], "angle": angle}


def edge_blur(rng: np.random.Generator, blur: float | None) -> float:
    """Soft-edge width in units of sqrt(H * W): about 0.2..1.1 px at 56 px."""
    return float(rng.uniform(0.004, 0.02)) if blur is None else float(blur)


def jitter(rng: np.random.Generator, rgb, amount: float) -> list:
    """``rgb`` plus Gaussian noise of std ``amount`` per channel, clipped to [0, 1]."""
    return np.clip(np.asarray(rgb) + rng.normal(0.0, amount, 3), 0.0, 1.0).tolist()


def random_colour(rng: np.random.Generator) -> list:
    """Any hue, from greyish to saturated, from dark to light."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.15, 0.9), rng.uniform(0.15, 0.95)
    return list(colorsys.hsv_to_rgb(hue, sat, val))


def scaled(rgb, factor: float) -> list:
    """A darker (``factor`` < 1) or lighter shade of ``rgb``."""
    return np.clip(np.asarray(rgb) * factor, 0.0, 1.0).tolist()


def rotation(angle: float) -> np.ndarray:
    """2x2 rotation by ``angle`` radians (in pixel space, y down: clockwise on screen)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def pick(rng: np.random.Generator, options):
    """One of ``options`` (a sequence, or a dict's keys), uniformly: much cheaper than
    ``rng.choice`` for a handful of Python objects."""
    options = list(options)
    return options[int(rng.integers(len(options)))]


def solid(rgb, **shade) -> dict:
    """A solid fill, with optional ``grad`` / ``cyl`` / ``rim`` shading."""
    return {"type": "solid", "rgb": list(rgb), **shade}
