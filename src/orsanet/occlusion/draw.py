"""Draw occluders from plain-data layers: soft-edged shapes with solid, patterned or photo fills.

Every occluder is a list of layers (JSON-ready dicts) painted in order over the crop, each one
``out = out * (1 - a) + colour * a``. Shapes:

- ``{"shape": "rect", "box": [x0, y0, x1, y1]}``: a hard box on whole pixels (edges rounded to
  the nearest pixel boundary), for the square / region protocols;
- ``{"shape": "ellipse", "c": [x, y], "r": [rx, ry], "angle": a}``;
- ``{"shape": "polygon", "pts": [[x, y], ...], "round": r}``: even-odd filled, grown by ``r``;
- ``{"shape": "polyline", "pts": [[x, y], ...], "r": r or [r per point]}``: a chain of capsules.

Units: positions are [0, 1] crop units (x times W, y times H, the same for ``c``, ``r`` and
``pts``); lengths without a direction (``round``, polyline ``r``, ``blur``, rim widths) are in
units of ``sqrt(H * W)``; angles are radians in pixel space (y down). So one layer list draws the
same occluder at any resolution, and bit-identically at the same one.

Per layer: ``alpha`` (opacity, default 1), ``blur`` (soft-edge width, default 0 = hard), ``ring``
(draw only an outline of that width, centred on the shape's edge), ``fill``, and an optional
``frame`` ``{"c", "h", "angle"}`` giving the local coordinates (u, v), in [-1, 1] over the
shape, that patterns and photos are laid out in (default: the ellipse itself, or the shape's
bounding box). Alpha is ``clip(1/2 - d / blur, 0, 1)`` for a signed distance ``d`` in pixels
(negative inside), so it is above 1/2 exactly inside the shape: the boolean mask (total coverage
above 1/2) is the opaque shapes themselves, whatever the blur.

Fills (``rgb`` in [0, 1]): ``solid``; ``stripes`` / ``checks`` / ``dots`` / ``strands``
(``rgb`` and ``rgb2``, ``freq`` periods per unit of u, ``angle``, ``duty`` / ``radius`` /
``phase``, ``wave`` "square" or "sine"); ``photo`` (``name``, ``box`` inside the photo in [0, 1],
``gain`` per channel). Shading on any fill: ``grad`` (x ``1 + grad * v``), ``cyl``
(x ``1 - cyl * u^2``), ``rim`` ``[width, amount]`` (darker near the edge).

Pixels are computed in float32 with IEEE-exact operations only (+ - * / sqrt floor; waves are
polynomials, not numpy's CPU-dependent SIMD sin / cos), so a geometry draws the same bits on any
machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_F = np.float32


def render(image: np.ndarray, layers: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Paint ``layers`` over ``image (H, W, 3)`` float in [0, 1] -> ``(H, W, 3)`` float32 in
    [0, 1] and the occluder mask ``(H, W)`` bool (total coverage above 1/2)."""
    out = np.array(image, dtype=_F, copy=True)
    h, w = out.shape[:2]
    keep = np.ones((h, w), _F)  # product of (1 - alpha): the share of the face still visible
    for layer in layers:
        if layer["shape"] == "rect":
            _paint_rect(out, keep, layer)
            continue
        drawn = _SHAPES[layer["shape"]](layer, h, w, _pad(layer, h, w))
        if drawn is None:
            continue
        (y0, y1, x0, x1), gx, gy, sdf, local = drawn
        if "ring" in layer:  # only an outline of that width, centred on the edge
            sdf = np.abs(sdf) - _F(float(layer["ring"]) * math.sqrt(h * w) / 2)
        alpha = _alpha(sdf, float(layer.get("blur", 0.0)) * math.sqrt(h * w))
        if layer.get("alpha", 1.0) != 1.0:
            alpha *= _F(layer["alpha"])
        fill = layer["fill"]
        u = v = None
        if fill.get("type", "solid") != "solid" or "grad" in fill or "cyl" in fill:  # needs (u, v)
            frame = layer.get("frame", local)
            u, v = local if isinstance(frame, tuple) else _local(frame, gx, gy, h, w)
        colour = _colour(fill, u, v, sdf, math.sqrt(h * w))
        if u is not None:  # patterns, photos and gradients may leave [0, 1]; a rim only darkens
            colour = _clip01(colour)
        region = out[y0:y1, x0:x1]
        region += alpha[..., None] * (colour - region)  # exactly unchanged where alpha is 0
        keep[y0:y1, x0:x1] *= 1 - alpha
    return _clip01(out), keep < 0.5


def _clip01(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] in place (two plain ufunc calls: much cheaper than np.clip on small arrays)."""
    return np.minimum(np.maximum(x, 0.0, out=x), 1.0, out=x)


def pixel_box(box: Sequence[float], h: int, w: int) -> tuple[int, int, int, int]:
    """``[x0, y0, x1, y1]`` in crop units -> whole-pixel ``(x0, y0, x1, y1)``, clipped."""
    snap = lambda t, n: min(max(int(math.floor(t * n + 0.5)), 0), n)  # noqa: E731
    return snap(box[0], w), snap(box[1], h), snap(box[2], w), snap(box[3], h)


def _paint_rect(out: np.ndarray, keep: np.ndarray, layer: dict) -> None:
    x0, y0, x1, y1 = pixel_box(layer["box"], *out.shape[:2])
    a = _F(layer.get("alpha", 1.0))
    region = out[y0:y1, x0:x1]
    region *= 1 - a  # in this order: exactly the fill colour where a = 1
    region += np.asarray(layer["fill"]["rgb"], _F) * a
    keep[y0:y1, x0:x1] *= 1 - a


def _pad(layer: dict, h: int, w: int) -> float:
    """Pixels beyond the shape that its soft edge can still reach."""
    return (float(layer.get("blur", 0.0)) + float(layer.get("ring", 0.0))) * math.sqrt(h * w) / 2 + 1.0


def _alpha(sdf: np.ndarray, blur_px: float) -> np.ndarray:
    if blur_px <= 0:
        return (sdf < 0).astype(_F)
    return _clip01(_F(0.5) - sdf / _F(blur_px))


def _grid(lo: np.ndarray, hi: np.ndarray, h: int, w: int):
    """Window ``(y0, y1, x0, x1)`` covering pixel box lo..hi, and its pixel-centre coordinates
    ``gx (1, ww)``, ``gy (hh, 1)``; None when it misses the crop."""
    x0, y0 = max(int(math.floor(lo[0])), 0), max(int(math.floor(lo[1])), 0)
    x1, y1 = min(int(math.ceil(hi[0])), w), min(int(math.ceil(hi[1])), h)
    if x0 >= x1 or y0 >= y1:
        return None
    gx = (np.arange(x0, x1, dtype=_F) + _F(0.5))[None, :]
    gy = (np.arange(y0, y1, dtype=_F) + _F(0.5))[:, None]
    return (y0, y1, x0, x1), gx, gy


def _local(frame: dict, gx: np.ndarray, gy: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres -> coordinates (u, v) in a rotated frame, [-1, 1] over its half-sizes."""
    ca, sa = math.cos(frame.get("angle", 0.0)), math.sin(frame.get("angle", 0.0))
    dx, dy = gx - _F(frame["c"][0] * w), gy - _F(frame["c"][1] * h)
    hx, hy = max(frame["h"][0] * w, 1e-6), max(frame["h"][1] * h, 1e-6)
    return (dx * _F(ca) + dy * _F(sa)) / _F(hx), (dy * _F(ca) - dx * _F(sa)) / _F(hy)


def _bbox_frame(lo: np.ndarray, hi: np.ndarray, h: int, w: int) -> dict:
    return {"c": [(lo[0] + hi[0]) / 2 / w, (lo[1] + hi[1]) / 2 / h],
            "h": [(hi[0] - lo[0]) / 2 / w, (hi[1] - lo[1]) / 2 / h], "angle": 0.0}


# ------------------------------------------------------------------------------------- shapes
def _ellipse(layer: dict, h: int, w: int, pad: float):
    cx, cy = layer["c"][0] * w, layer["c"][1] * h
    rx, ry = max(layer["r"][0] * w, 1e-3), max(layer["r"][1] * h, 1e-3)
    angle = float(layer.get("angle", 0.0))
    ca, sa = math.cos(angle), math.sin(angle)
    ex, ey = math.hypot(rx * ca, ry * sa) + pad, math.hypot(rx * sa, ry * ca) + pad
    win = _grid(np.array([cx - ex, cy - ey]), np.array([cx + ex, cy + ey]), h, w)
    if win is None:
        return None
    u, v = _local({"c": layer["c"], "h": layer["r"], "angle": angle}, win[1], win[2], h, w)
    k0 = np.sqrt(u * u + v * v)
    ur, vr = u * _F(1 / rx), v * _F(1 / ry)
    k1 = np.sqrt(ur * ur + vr * vr)
    # first-order distance (k0 - 1) k0 / k1 = (k0 - 1) / |grad k0|, exact in sign (so the mask is
    # the true ellipse); k0 floored at 1/2 keeps the centre (k0 = k1 = 0) deep inside
    return (*win, (k0 - 1) * np.maximum(k0, _F(0.5)) / np.maximum(k1, _F(1e-12)), (u, v))


def _segments(pts: np.ndarray, gx: np.ndarray, gy: np.ndarray, closed: bool):
    """Per segment ``(K, hh, ww)``: squared distance to it and the position t along it, plus the
    segments' start points and extents ``(K, 1, 1)`` each."""
    a = pts if closed else pts[:-1]
    b = np.roll(pts, -1, axis=0) if closed else pts[1:]
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    ex, ey = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    inv = 1 / np.maximum(ex * ex + ey * ey, _F(1e-9))
    qx, qy = gx[None] - ax, gy[None] - ay  # (K, 1, ww), (K, hh, 1)
    t = _clip01(qx * (ex * inv) + qy * (ey * inv))
    dx = qx - t * ex
    dy = t * ey
    np.subtract(qy, dy, out=dy)
    dx *= dx
    dy *= dy
    dx += dy
    return dx, t, (ay, ey, ax, ex)


def _polygon(layer: dict, h: int, w: int, pad: float):
    pts = (np.asarray(layer["pts"], np.float64) * (w, h)).astype(_F)
    grow = float(layer.get("round", 0.0)) * math.sqrt(h * w)
    lo, hi = pts.min(0) - grow, pts.max(0) + grow
    win = _grid(lo - pad, hi + pad, h, w)
    if win is None:
        return None
    gx, gy = win[1], win[2]
    d2, _, (ay, ey, ax, ex) = _segments(pts, gx, gy, closed=True)
    # even-odd rule: count the edges crossing each row left of the pixel (per row: cheap)
    crosses = (ay > gy[None]) != (ay + ey > gy[None])  # (K, hh, 1)
    x_cross = np.where(crosses, ax + (gy[None] - ay) * ex / np.where(ey == 0, _F(1e-9), ey), _F(-np.inf))
    inside = np.count_nonzero(gx[None] < x_cross, axis=0) % 2 == 1
    dist = np.sqrt(d2.min(0))
    return (*win, np.where(inside, -dist, dist) - _F(grow), _bbox_frame(lo, hi, h, w))


def _polyline(layer: dict, h: int, w: int, pad: float):
    pts = (np.asarray(layer["pts"], np.float64) * (w, h)).astype(_F)
    radius = np.asarray(layer["r"], np.float64) * math.sqrt(h * w)
    radius = np.full(len(pts), radius, _F) if radius.ndim == 0 else radius.astype(_F)
    lo, hi = (pts - radius[:, None]).min(0), (pts + radius[:, None]).max(0)
    win = _grid(lo - pad, hi + pad, h, w)
    if win is None:
        return None
    d2, t, _ = _segments(pts, win[1], win[2], closed=False)
    r = radius[:-1, None, None] + t * (radius[1:] - radius[:-1])[:, None, None]
    return (*win, (np.sqrt(d2) - r).min(0), _bbox_frame(lo, hi, h, w))


_SHAPES = {"ellipse": _ellipse, "polygon": _polygon, "polyline": _polyline}


# -------------------------------------------------------------------------------------- fills
def _wave(t: np.ndarray) -> np.ndarray:
    """A smooth periodic wave in [0, 1] close to ``(1 + cos(2 pi t)) / 2`` (a smoothstep of the
    triangle wave), from exact arithmetic only."""
    tri = np.abs(2 * (t - np.floor(t)) - 1)
    return tri * tri * (3 - 2 * tri)


def _pattern(fill: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mix weight in [0, 1] between ``rgb`` and ``rgb2`` for the patterned fills."""
    angle = float(fill.get("angle", 0.0))
    ca, sa = _F(math.cos(angle)), _F(math.sin(angle))
    freq = _F(fill.get("freq", 4.0))
    across, along = (u * ca + v * sa) * freq, (v * ca - u * sa) * freq
    kind = fill["type"]
    if kind == "stripes":
        if fill.get("wave", "square") == "sine":
            return 1 - _wave(across)
        return (across - np.floor(across) < _F(fill.get("duty", 0.5))).astype(_F)
    if kind == "checks":
        return ((np.floor(across) + np.floor(along)) % 2).astype(_F)
    if kind == "dots":
        fu, fv = across - np.floor(across) - 0.5, along - np.floor(along) - 0.5
        return (fu * fu + fv * fv < _F(fill.get("radius", 0.3)) ** 2).astype(_F)
    if kind == "strands":  # wavy hair strands: two incommensurate waves along a wavy path
        phase = _F(fill.get("phase", 0.0) / (2 * math.pi))
        t = across + _F(1.2) * _wave((v * ca - u * sa) * _F(0.4) + phase)
        return _F(0.6) * _wave(t) + _F(0.4) * _wave(_F(2.71) * t + phase)
    raise ValueError(f"unknown fill type {kind!r}")


def _colour(fill: dict, u: np.ndarray, v: np.ndarray, sdf: np.ndarray, scale: float) -> np.ndarray:
    """Colour ``(hh, ww, 3)`` (or ``(3,)`` for a plain solid) of a fill at local (u, v)."""
    kind = fill.get("type", "solid")
    if kind == "solid":
        colour = np.asarray(fill["rgb"], _F)
    elif kind == "photo":
        from .textured import sample_photo

        colour = sample_photo(fill, u, v)
    else:
        c1, c2 = np.asarray(fill["rgb"], _F), np.asarray(fill["rgb2"], _F)
        colour = c1 + _pattern(fill, u, v)[..., None] * (c2 - c1)
    shade = None
    if "grad" in fill:
        shade = 1 + _F(fill["grad"]) * np.minimum(np.maximum(v, _F(-1.0)), _F(1.0))
    if "cyl" in fill:
        shade = (1 if shade is None else shade) * (1 - _F(fill["cyl"]) * _clip01(u * u))
    if "rim" in fill:
        width, amount = fill["rim"]
        rim = 1 - _F(amount) * _clip01(1 + sdf / _F(max(width * scale, 1e-3)))
        shade = rim if shade is None else shade * rim
    return colour if shade is None else colour * shade[..., None]
