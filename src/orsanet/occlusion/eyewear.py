"""Eyewear: ``sunglasses`` and clear ``glasses``.

Two lenses (round, oval or rectangular) over the eyes, tilted with the eye line, rims, a bridge
and temples to the ears. Sunglass lenses are dark and nearly opaque (alpha 0.88..0.97), so they
count as hidden. Clear lenses are only slightly tinted (alpha 0.06..0.2) and do NOT count: the
mask of ``glasses`` is the frame alone, the only part that really hides the face (the tinted
lens pixels change a little but stay outside the mask, as does a faint glare on every lens).
"""

from __future__ import annotations

import numpy as np

from .canvas import Canvas, edge_blur, jitter, pick, rotation, solid
from .layout import FaceLayout

FRAME_COLOURS = {"black": (0.05, 0.05, 0.05), "tortoise": (0.33, 0.19, 0.09), "gold": (0.78, 0.63, 0.32),
                 "silver": (0.72, 0.72, 0.75)}
LENS_COLOURS = {"black": (0.04, 0.04, 0.05), "brown": (0.22, 0.13, 0.07), "green": (0.09, 0.15, 0.09),
                "blue": (0.10, 0.14, 0.22)}


def _eyewear(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], dark: bool,
             blur: float | None) -> tuple[list, dict]:
    """Layers (temples, bridge, rims, lenses, glare) and the chosen style of a pair of glasses."""
    cv = Canvas(size, edge_blur(rng, blur))
    roll = layout.roll(size)
    eyes = [cv.px(c) for c in layout.eye_centres]
    d = float(np.hypot(*(eyes[1] - eyes[0])))
    across, down = rotation(roll) @ np.array([1.0, 0.0]), rotation(roll) @ np.array([0.0, 1.0])
    style = pick(rng, ["round", "oval", "rect"])
    hx = float(rng.uniform(0.40, 0.50) if dark else rng.uniform(0.36, 0.46)) * d
    aspect = {"round": (0.85, 1.0), "oval": (0.6, 0.75), "rect": (0.6, 0.8)}[style]  # height / width
    hy = hx * float(rng.uniform(*aspect))
    rim = max(float(rng.uniform(0.06, 0.14) if dark else rng.uniform(0.04, 0.09)) * hx, 1.0)  # >= 1 px
    frame_name = pick(rng, FRAME_COLOURS)
    frame_fill = solid(jitter(rng, FRAME_COLOURS[frame_name], 0.02), rim=[0.01, 0.2])
    if dark:
        tint = pick(rng, LENS_COLOURS)
        lens_fill, lens_alpha = solid(jitter(rng, LENS_COLOURS[tint], 0.015), grad=0.5), float(rng.uniform(0.88, 0.97))
    else:
        tint = "clear"
        lens_fill, lens_alpha = solid(jitter(rng, (0.9, 0.93, 0.96), 0.03)), float(rng.uniform(0.06, 0.2))
    drop, spread = float(rng.uniform(0, 0.15)) * hy, float(rng.uniform(0, 0.06)) * hx
    centres = [eyes[0] + down * drop - across * spread, eyes[1] + down * drop + across * spread]

    def lens(c, grow: float, fill: dict, **extra) -> dict:
        if style != "rect":
            return cv.ellipse(c, hx + grow, hy + grow, roll, fill, **extra)
        r = 0.3 * hy
        corners = np.array([[-hx + r, -hy + r], [hx - r, -hy + r], [0.92 * hx - r, hy - r], [-0.92 * hx + r, hy - r]])
        return cv.polygon(c + corners @ rotation(roll).T, fill, round_px=r + grow, **extra)

    layers = []
    for k, c in enumerate(centres):  # temples first: the rims cover where they join
        out = -1.0 if k == 0 else 1.0
        start = c + across * out * hx * 0.95 - down * hy * 0.3
        ear = cv.px(layout.ears[k]) + across * out * 0.02 * d
        layers.append(cv.polyline([start, (start + ear) / 2 - down * 0.02 * d, ear], rim * 0.45, frame_fill))
    inner = [centres[0] + across * hx * 0.95, centres[1] - across * hx * 0.95]
    bridge = [inner[0] - down * 0.2 * hy, (inner[0] + inner[1]) / 2 - down * rng.uniform(0.2, 0.45) * hy,
              inner[1] - down * 0.2 * hy]
    layers.append(cv.polyline(bridge, rim * 0.5, frame_fill))
    layers += [lens(c, rim / 2, frame_fill, ring=rim / cv.scale) for c in centres]
    layers += [lens(c, 0.0, lens_fill, alpha=lens_alpha) for c in centres]
    glare = float(rng.uniform(0.1, 0.3))
    for c in centres:  # a soft reflection inside each lens: never opaque enough to count as hidden
        spot = c - across * 0.3 * hx - down * 0.4 * hy
        layers.append(cv.ellipse(spot, 0.35 * hx, 0.18 * hy, roll - 0.3, solid([1.0, 1.0, 1.0]), alpha=glare * 0.5))
    return layers, {"style": style, "frame": frame_name, "lens": tint, "lens_alpha": lens_alpha}


def sunglasses(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *,
               blur: float | None = None) -> dict:
    """Dark, nearly opaque lenses in a frame: lenses and frame are masked."""
    layers, params = _eyewear(rng, layout, size, True, blur)
    return {"kind": "sunglasses", "params": params, "layers": layers}


def glasses(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *,
            blur: float | None = None) -> dict:
    """Clear glasses: only the frame is opaque (masked); the faintly tinted lenses are not."""
    layers, params = _eyewear(rng, layout, size, False, blur)
    return {"kind": "glasses", "params": params, "layers": layers}
