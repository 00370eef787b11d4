"""Realistic occluders drawn procedurally from the face layout (no image assets).

Each generator samples colour, size, position, rotation and edge blur, and returns the layer
list that :func:`~orsanet.occlusion.draw.render` paints. Sizes follow the face (face width, eye
distance), angles the eye line. The realistic kinds:

- ``medical_mask``: blue / white / green / black with soft pleats and ear straps, from the
  nose bridge to under the chin, following the face outline;
- ``cloth_mask``: the same cut, a little higher, random colours and patterns (solid, stripes,
  checks, dots), a centre seam and fabric ear loops;
- ``sunglasses`` / ``glasses`` (:mod:`.eyewear`): only the frame of clear glasses is masked;
- ``hand`` (:mod:`.hand`): over the mouth, a cheek or the eyes, in a range of skin tones;
- ``hair``: a fringe with wavy strands (black, brown, auburn, blond) down to the forehead, the
  brows or over the eyes, and a few loose locks;
- ``scarf``: over the chin, up to the lips or to the nose, solid / striped / checked / knit;
- ``cup`` (a mug with a handle, or a paper cup with a sleeve) and ``microphone``, held in front
  of the mouth or the chin;
- ``textured`` (:mod:`.textured`): an object cut from a real photograph.
"""

from __future__ import annotations

import math

import numpy as np

from .canvas import Canvas, edge_blur, jitter, pick, random_colour, rotation, scaled, solid
from .eyewear import glasses, sunglasses
from .hand import hand
from .layout import FaceLayout

__all__ = ["medical_mask", "cloth_mask", "sunglasses", "glasses", "hand", "hair", "scarf", "cup", "microphone"]

HAIR_COLOURS = {"black": (0.06, 0.05, 0.05), "dark_brown": (0.18, 0.11, 0.07), "brown": (0.35, 0.22, 0.13),
                "auburn": (0.45, 0.21, 0.10), "blond": (0.80, 0.66, 0.42)}
MEDICAL_COLOURS = {"blue": (0.56, 0.75, 0.89), "white": (0.93, 0.94, 0.95), "green": (0.58, 0.80, 0.72),
                   "black": (0.13, 0.13, 0.14)}
MUG_COLOURS = ((0.95, 0.95, 0.93), (0.10, 0.10, 0.11), (0.70, 0.12, 0.10), (0.20, 0.35, 0.65), (0.90, 0.74, 0.20))


def _cloth_fill(rng: np.random.Generator, base, pattern: str) -> dict:
    """A fabric fill: ``pattern`` in solid / stripes / checks / dots / knit."""
    second = random_colour(rng) if rng.random() < 0.6 else scaled(base, 0.6)
    shade = {"grad": float(rng.uniform(0.03, 0.15)), "rim": [0.02, 0.3]}
    if pattern == "solid":
        return solid(base, **shade)
    if pattern == "knit":
        return {"type": "stripes", "wave": "sine", "rgb": base, "rgb2": scaled(base, 0.75),
                "freq": float(rng.uniform(8, 14)), "angle": 0.0, **shade}
    fill = {"type": pattern, "rgb": base, "rgb2": second, "freq": float(rng.uniform(2.5, 6)),
            "angle": float(rng.uniform(0, math.pi)), **shade}
    if pattern == "stripes":
        fill["duty"] = float(rng.uniform(0.25, 0.6))
    if pattern == "dots":
        fill["radius"] = float(rng.uniform(0.18, 0.35))
    return fill


# ------------------------------------------------------------------------------ face masks
def _lower_face(layout: FaceLayout, top: float, lift: float, grow: float,
                drop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outline ``(K, 2)`` (crop units) of the face below height ``top``, widened ``grow`` times,
    the chin lowered by ``drop``, closed by an arc over the nose raised by ``lift``; and its
    top-left and top-right corners."""
    below = layout.loop[layout.loop[:, 1] > top]  # right side down, chin, left side up
    if len(below) > 12:  # every other mesh point is plenty for a mask's outline
        below = below[np.unique(np.r_[np.arange(0, len(below), 2), len(below) - 1])]
    below = below.copy()
    cx = (layout.face[0] + layout.face[2]) / 2
    below[:, 0] = cx + (below[:, 0] - cx) * grow
    mouth_y, chin_y = layout.mouth_centre[1], layout.chin[1]
    below[:, 1] += drop * np.clip((below[:, 1] - mouth_y) / max(chin_y - mouth_y, 1e-6), 0, 1)
    xl, xr = (cx + (x - cx) * grow for x in layout.sides_at(top))
    left, right, peak = np.array([xl, top]), np.array([xr, top]), np.array([layout.nose_tip[0], top - lift])
    control = 2 * peak - (left + right) / 2  # the quadratic arc passes through the peak
    t = np.linspace(0, 1, 7)[1:-1, None]
    arc = (1 - t) ** 2 * left + 2 * t * (1 - t) * control + t ** 2 * right
    return np.concatenate([right[None], below, left[None], arc]), left, right


def _ear_straps(layout: FaceLayout, cv: Canvas, corners: tuple[np.ndarray, np.ndarray], r: float,
                fill: dict) -> list:
    """Two straps per side, from the mask's top corner and from its side lower down, to the ear."""
    fw, fh = layout.face_size
    low = layout.mouth_centre[1] + 0.4 * (layout.chin[1] - layout.mouth_centre[1])
    sides_low = layout.sides_at(low)
    layers = []
    for k, ear in enumerate(layout.ears):
        out = -1.0 if k == 0 else 1.0
        ear = ear + np.array([out * 0.03 * fw, -0.02 * fh])
        for corner in (corners[k], np.array([sides_low[k], low])):
            mid = (corner + ear) / 2 + np.array([out * 0.02 * fw, 0.0])
            layers.append(cv.polyline(cv.px([corner, mid, ear]), r, fill))
    return layers


def medical_mask(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, color=None,
                 blur: float | None = None) -> dict:
    """A surgical mask from the nose bridge to under the chin."""
    cv = Canvas(size, edge_blur(rng, blur))
    family = pick(rng, MEDICAL_COLOURS) if color is None else "given"
    base = jitter(rng, MEDICAL_COLOURS[family], 0.025) if color is None else list(color)
    eye_bottom = max(layout.eye_left[3], layout.eye_right[3])
    top = eye_bottom + float(rng.uniform(0.3, 0.55)) * (layout.nose_tip[1] - eye_bottom)
    fh = layout.face_size[1]
    body, *corners = _lower_face(layout, top, lift=rng.uniform(0.02, 0.05) * fh, grow=rng.uniform(1.02, 1.07),
                                 drop=rng.uniform(0.02, 0.06) * fh)
    pleats = int(rng.integers(3, 5))
    lo, hi = cv.px(body).min(0), cv.px(body).max(0)
    fill = {"type": "stripes", "wave": "sine", "rgb": base, "rgb2": scaled(base, 0.8), "freq": pleats / 2,
            "angle": math.pi / 2, "grad": 0.08, "rim": [0.02, 0.25]}
    mask = cv.polygon(cv.px(body), fill, frame=cv.frame((lo + hi) / 2, *(hi - lo) / 2, layout.roll(size)))
    straps = _ear_straps(layout, cv, corners, 0.007 * cv.scale, solid(scaled(base, 1.05)))
    return {"kind": "medical_mask", "params": {"colour": family, "pleats": pleats}, "layers": straps + [mask]}


def cloth_mask(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, color=None,
               pattern: str | None = None, blur: float | None = None) -> dict:
    """A fabric mask: rounder and a little higher than a medical one, any colour and pattern."""
    cv = Canvas(size, edge_blur(rng, blur))
    base = random_colour(rng) if color is None else list(color)
    pattern = pick(rng, ["solid", "stripes", "checks", "dots"]) if pattern is None else pattern
    eye_bottom = max(layout.eye_left[3], layout.eye_right[3])
    top = eye_bottom + float(rng.uniform(0.2, 0.45)) * (layout.nose_tip[1] - eye_bottom)
    fh = layout.face_size[1]
    lift = rng.uniform(0.04, 0.08) * fh
    body, *corners = _lower_face(layout, top, lift=lift, grow=rng.uniform(1.03, 1.08),
                                 drop=rng.uniform(0.03, 0.08) * fh)
    lo, hi = cv.px(body).min(0), cv.px(body).max(0)
    frame = cv.frame((lo + hi) / 2, *(hi - lo) / 2, layout.roll(size))
    mask = cv.polygon(cv.px(body), _cloth_fill(rng, base, pattern), frame=frame)
    seam_top = np.array([layout.nose_tip[0], top - 0.8 * lift])
    seam = cv.polyline(cv.px([seam_top, (seam_top + layout.chin) / 2, layout.chin]), 0.004 * cv.scale,
                       solid(scaled(base, 0.65)), alpha=0.6)
    loops = _ear_straps(layout, cv, corners, 0.012 * cv.scale, solid(scaled(base, 0.9)))
    return {"kind": "cloth_mask", "params": {"pattern": pattern}, "layers": loops + [mask, seam]}


# ------------------------------------------------------------------------------ hair, scarf
def hair(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, color=None,
         cover: float | None = None, blur: float | None = None) -> dict:
    """A fringe down to the forehead (``cover`` 0), the brows, or the eyes (``cover`` 1)."""
    cv = Canvas(size, edge_blur(rng, blur))
    shade_name = pick(rng, HAIR_COLOURS) if color is None else "given"
    base = jitter(rng, HAIR_COLOURS[shade_name], 0.02) if color is None else list(color)
    cover = float(rng.uniform(0, 1)) if cover is None else float(cover)
    x0, _, x1, _ = layout.face
    fw, fh = layout.face_size
    brow_top = min(layout.brow_left[1], layout.brow_right[1]) - 0.03 * fh
    eye_bottom = max(layout.eye_left[3], layout.eye_right[3]) + 0.02 * fh
    level = brow_top + cover * (eye_bottom - brow_top)
    slope, cx = float(rng.uniform(-0.4, 0.4)), (x0 + x1) / 2
    half = (x1 - x0) / 2 * float(rng.uniform(1.02, 1.12))
    xl, xr = cx - half, cx + half
    n = int(rng.integers(7, 12))
    xs = np.linspace(xl, xr, n)  # the fringe's lower edge, left to right
    ys = level + slope * (xs - cx) + rng.uniform(-0.01, 0.01, n) * fh
    ys[1::2] += rng.uniform(0.015, 0.06, len(ys[1::2])) * fh  # the tips of the locks
    ys[[0, -1]] += rng.uniform(0.08, 0.25, 2) * fh  # longer at the temples
    crown = layout.forehead[1] - float(rng.uniform(0.1, 0.25)) * fh
    theta = np.linspace(0, math.pi, 7)[1:-1]  # back over the crown, right to left
    side_y = ys[-1] + (ys[0] - ys[-1]) * theta / math.pi
    dome = np.stack([cx + half * np.cos(theta), side_y - (side_y - crown) * np.sin(theta)], 1)
    fringe = np.concatenate([np.stack([xs, ys], 1), dome])
    fill = {"type": "strands", "rgb": base, "rgb2": scaled(base, 0.6),
            "freq": float(rng.uniform(8, 16)), "angle": -0.8 * slope, "phase": float(rng.uniform(0, 2 * math.pi)),
            "grad": float(rng.uniform(-0.2, 0.1)), "rim": [0.015, 0.25]}
    layers = [cv.polygon(cv.px(fringe), fill, round_px=0.004 * cv.scale)]
    locks = int(rng.integers(2, 6))  # loose locks hanging from the fringe, 4 points each
    x = rng.uniform(xl + 0.1 * fw, xr - 0.1 * fw, locks)
    start = np.stack([x, level + slope * (x - cx) - 0.02 * fh], 1)
    step = np.stack([slope * 0.5 + rng.uniform(-0.2, 0.2, locks), np.ones(locks)], 1)
    step *= rng.uniform(0.02, 0.065, (locks, 1)) * fh
    pts = start[:, None] + step[:, None] * np.arange(4)[None, :, None]
    pts[:, 1:, 0] += rng.uniform(-0.015, 0.015, (locks, 3)) * fw  # a little wiggle
    radius = rng.uniform(0.006, 0.012, locks) * cv.scale
    for lock, r0 in zip(pts, radius):
        layers.append(cv.polyline(cv.px(lock), r0 * np.array([1.0, 0.8, 0.6, 0.35]), solid(jitter(rng, base, 0.02))))
    return {"kind": "hair", "params": {"colour": shade_name, "cover": cover}, "layers": layers}


def scarf(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, color=None,
          pattern: str | None = None, blur: float | None = None) -> dict:
    """A scarf wrapped over the chin, up to the lips or just under the nose."""
    cv = Canvas(size, edge_blur(rng, blur))
    base = random_colour(rng) if color is None else list(color)
    pattern = pick(rng, ["solid", "stripes", "checks", "knit"]) if pattern is None else pattern
    x0, _, x1, _ = layout.face
    fw, fh = layout.face_size
    tip, chin = layout.nose_tip[1], layout.chin[1]
    top = tip + float(rng.uniform(-0.15, 0.6)) * (chin - tip)
    xl, xr = x0 - rng.uniform(0.05, 0.2) * fw, x1 + rng.uniform(0.05, 0.2) * fw
    t = np.linspace(0, 1, 7)
    sag = float(rng.uniform(-0.04, 0.06)) * fh
    wobble = rng.uniform(-0.015, 0.015, 7) * fh
    edge = np.stack([xl + t * (xr - xl), top + sag * (1 - (2 * t - 1) ** 2) + wobble], 1)  # the top, left to right
    body = np.concatenate([edge, [[xr + 0.1 * fw, 1.1], [xl - 0.1 * fw, 1.1]]])
    layers = [cv.polygon(cv.px(body), _cloth_fill(rng, base, pattern), round_px=0.01 * cv.scale)]
    for _ in range(int(rng.integers(2, 4))):  # folds: faint, so they never change the mask
        x = float(rng.uniform(xl + 0.15 * fw, xr - 0.15 * fw))
        y = float(np.interp(x, edge[:, 0], edge[:, 1])) + 0.06 * fh
        end = np.array([x + rng.uniform(-0.15, 0.15) * fw, 1.05])
        mid = (np.array([x, y]) + end) / 2 + np.array([rng.uniform(-0.04, 0.04) * fw, 0.0])
        layers.append(cv.polyline(cv.px([[x, y], mid, end]), 0.012 * cv.scale, solid(scaled(base, 0.6)),
                                  alpha=0.35))
    return {"kind": "scarf", "params": {"pattern": pattern, "top": top}, "layers": layers}


# ----------------------------------------------------------------------- held objects
def cup(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, color=None,
        style: str | None = None, blur: float | None = None) -> dict:
    """A ``mug`` (with a handle) or a ``paper`` cup held in front of the mouth or chin."""
    cv = Canvas(size, edge_blur(rng, blur))
    style = pick(rng, ["mug", "paper"]) if style is None else style
    fw, fh = layout.face_size[0] * cv.w, layout.face_size[1] * cv.h
    width = float(rng.uniform(0.4, 0.6)) * fw
    height = width * float(rng.uniform(1.0, 1.35) if style == "mug" else rng.uniform(1.2, 1.5))
    taper = 1.0 if style == "mug" else float(rng.uniform(0.75, 0.85))
    rim_c = cv.px(layout.mouth_centre) + np.array([rng.uniform(-0.15, 0.15) * fw, rng.uniform(-0.15, 0.05) * fh])
    tilt = float(rng.uniform(-0.25, 0.25))
    rot = rotation(tilt)
    place = lambda p: rim_c + np.asarray(p, np.float64) @ rot.T  # noqa: E731  (cup frame -> pixels)
    if color is not None:
        colour = list(color)
    elif style == "mug":
        colour = jitter(rng, pick(rng, MUG_COLOURS), 0.03)
    else:
        colour = jitter(rng, (0.96, 0.95, 0.92) if rng.random() < 0.5 else (0.70, 0.55, 0.38), 0.02)
    shade = {"cyl": float(rng.uniform(0.25, 0.4)), "rim": [0.015, 0.2]}
    half, r = width / 2, 0.08 * width
    body = [[-half + r, r], [half - r, r], [half * taper - r, height - r], [-half * taper + r, height - r]]
    frame = cv.frame(place([0.0, height / 2]), half, height / 2, tilt)
    layers = []
    if style == "mug":  # the handle first: the body covers where it joins
        side = 1.0 if rng.random() < 0.5 else -1.0
        k = np.linspace(0, math.pi, 7)
        handle = np.stack([side * (half - 0.02 * width + 0.28 * width * np.sin(k)),
                           0.2 * height + 0.5 * height * (1 - np.cos(k)) / 2], 1)
        layers.append(cv.polyline(place(handle), 0.05 * width, solid(colour, rim=[0.01, 0.3])))
    layers.append(cv.polygon(place(body), solid(colour, **shade), round_px=r, frame=frame))
    if style == "paper":  # a cardboard sleeve round the middle, inside the body's outline
        f = lambda y: half + (half * taper - half) * y / height - 0.01 * width  # noqa: E731
        sleeve = [[-f(0.35 * height), 0.35 * height], [f(0.35 * height), 0.35 * height],
                  [f(0.7 * height), 0.7 * height], [-f(0.7 * height), 0.7 * height]]
        layers.append(cv.polygon(place(sleeve), solid(jitter(rng, (0.55, 0.38, 0.22), 0.03), **shade), frame=frame))
    lip_ry = width * float(rng.uniform(0.06, 0.12))
    layers.append(cv.ellipse(rim_c, half, lip_ry, tilt, solid(scaled(colour, 1.08))))
    inside = (0.28, 0.17, 0.09) if rng.random() < 0.5 else scaled(colour, 0.5)
    layers.append(cv.ellipse(place([0.0, 0.15 * lip_ry]), 0.88 * half, 0.7 * lip_ry, tilt, solid(inside)))
    return {"kind": "cup", "params": {"style": style, "tilt": tilt}, "layers": layers}


def microphone(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *,
               blur: float | None = None) -> dict:
    """A handheld microphone: a meshed ball head near the mouth, the handle going down."""
    cv = Canvas(size, edge_blur(rng, blur))
    fw, fh = layout.face_size[0] * cv.w, layout.face_size[1] * cv.h
    radius = float(rng.uniform(0.13, 0.2)) * fw
    head = cv.px(layout.mouth_centre) + np.array([rng.uniform(-0.2, 0.2) * fw, rng.uniform(-0.05, 0.15) * fh])
    phi = math.pi / 2 + float(rng.uniform(-0.6, 0.6))
    along = rotation(phi) @ np.array([1.0, 0.0])
    handle_colour = jitter(rng, pick(rng, [(0.08, 0.08, 0.09), (0.7, 0.7, 0.72), (0.3, 0.3, 0.32)]), 0.02)
    length = float(rng.uniform(4.0, 6.0)) * radius
    handle = [head + along * 1.2 * radius, head + along * length]
    frame = cv.frame((handle[0] + handle[1]) / 2, 0.45 * radius, length / 2, phi - math.pi / 2)
    grey = jitter(rng, (0.55, 0.55, 0.57), 0.04)
    mesh = {"type": "dots", "rgb": grey, "rgb2": scaled(grey, 0.35), "freq": float(rng.uniform(4, 7)),
            "radius": 0.32, "rim": [0.04, 0.5], "grad": 0.2}
    layers = [cv.polyline(handle, [0.42 * radius, 0.32 * radius], solid(handle_colour, cyl=0.5), frame=frame),
              cv.polyline([head + along * 0.7 * radius, head + along * 1.3 * radius], 0.55 * radius,
                          solid(jitter(rng, (0.75, 0.75, 0.78), 0.03), cyl=0.5), frame=frame),
              cv.ellipse(head, radius, radius, float(rng.uniform(0, math.pi)), mesh)]
    return {"kind": "microphone", "params": {"head_radius": radius / fw}, "layers": layers}  # in face widths
