"""A hand over the face: a palm with four fingers and a thumb and the forearm behind it.

Skin tones are drawn between neighbours of a range of real skin colours (very light to very
dark); fingers are spread ("front": palm to the camera, thumb out) or together ("side"); the
hand covers the mouth (palm on it, fingers up, or fingers across it), a cheek, or the eyes.
"""

from __future__ import annotations

import math

import numpy as np

from .canvas import Canvas, edge_blur, jitter, pick, rotation, scaled, solid
from .layout import FaceLayout

SKIN_TONES = ((0.98, 0.87, 0.78), (0.95, 0.79, 0.67), (0.89, 0.69, 0.54), (0.78, 0.57, 0.42),
              (0.63, 0.43, 0.30), (0.47, 0.31, 0.21), (0.33, 0.21, 0.14))  # light to dark


def _skin(rng: np.random.Generator, skin) -> list:
    """``skin``: an index into :data:`SKIN_TONES`, an RGB triple, or None for a random tone
    between two neighbouring ones."""
    if skin is None:
        t = rng.uniform(0, len(SKIN_TONES) - 1)
        k = min(int(t), len(SKIN_TONES) - 2)
        tone = np.asarray(SKIN_TONES[k]) * (1 - (t - k)) + np.asarray(SKIN_TONES[k + 1]) * (t - k)
        return jitter(rng, tone, 0.015)
    return list(SKIN_TONES[skin]) if isinstance(skin, int) else list(skin)


def hand(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], *, target: str | None = None,
         pose: str | None = None, skin=None, blur: float | None = None) -> dict:
    """A hand over the ``mouth``, a ``cheek`` or the ``eyes``; ``pose`` "front" (fingers
    spread, thumb out) or "side" (fingers together, thumb tucked)."""
    cv = Canvas(size, edge_blur(rng, blur))
    target = pick(rng, ["mouth", "cheek", "eyes"]) if target is None else target
    pose = pick(rng, ["front", "side"]) if pose is None else pose
    tone = _skin(rng, skin)
    fw = layout.face_size[0] * cv.w
    pw = float(rng.uniform(0.25, 0.32)) * fw  # palm half-width (across the fingers)
    pl = pw * float(rng.uniform(1.0, 1.2))  # palm half-length
    fl = pl * float(rng.uniform(0.95, 1.2))  # middle finger length
    fr = pw * float(rng.uniform(0.2, 0.24))  # finger radius
    from_left = rng.random() < 0.5
    sideways = (0.0 if from_left else math.pi) + float(rng.uniform(-0.3, 0.3))
    nudge = rng.uniform(-0.05, 0.05, 2) * fw
    if target == "mouth":
        anchor = cv.px(layout.mouth_centre) + nudge
        palm_over = rng.random() < 0.5  # palm on the mouth, fingers up; else fingers across it
        phi = -math.pi / 2 + float(rng.uniform(-0.4, 0.4)) if palm_over else sideways
    elif target == "cheek":
        side = 0 if from_left else 1
        corner = layout.mouth[0] if side == 0 else layout.mouth[2]
        y = layout.nose_tip[1]
        anchor = cv.px([(corner + layout.sides_at(y)[side]) / 2, y]) + nudge
        palm_over = True
        phi = -math.pi / 2 + (1 if side == 0 else -1) * float(rng.uniform(0.05, 0.45))
    elif target == "eyes":
        anchor = cv.px((layout.eye_centres[0] + layout.eye_centres[1]) / 2) + nudge * 0.5
        palm_over, phi = False, sideways
    else:
        raise ValueError(f"hand target must be mouth, cheek or eyes, got {target!r}")
    along, perp = rotation(phi) @ np.array([1.0, 0.0]), rotation(phi) @ np.array([0.0, 1.0])
    palm = anchor - along * 0.1 * pl if palm_over else anchor - along * (0.72 * pl + 0.5 * fl)
    spread = 0.12 if pose == "front" else 0.0
    thumb_side = 1.0 if rng.random() < 0.5 else -1.0
    shade = {"rim": [0.025, 0.22]}
    # the palm: a rounded trapezoid, wider at the knuckles than at the wrist
    r = 0.35 * pw
    corners = np.array([[pl - r, -pw + r], [pl - r, pw - r], [-pl + r, 0.8 * pw - r], [-pl + r, -0.8 * pw + r]])
    wrist = palm - along * 0.7 * pl
    layers = [cv.polyline([wrist, wrist - along * 3 * pw], [0.62 * pw, 0.75 * pw], solid(tone, **shade)),
              cv.polygon(palm + corners @ rotation(phi).T, solid(scaled(tone, 1.02), **shade), round_px=r)]
    thumb_angle = phi + thumb_side * float(rng.uniform(0.6, 1.0) if pose == "front" else rng.uniform(0.2, 0.35))
    thumb_dir = rotation(thumb_angle) @ np.array([1.0, 0.0])
    base = palm - along * 0.3 * pl + perp * thumb_side * 0.7 * pw
    length = fl * (0.65 if pose == "front" else 0.5)
    layers.append(cv.polyline([base, base + thumb_dir * length * 0.5, base + thumb_dir * length],
                              [1.15 * fr, 1.05 * fr, 0.9 * fr], solid(jitter(rng, tone, 0.01), **shade)))
    # index, middle, ring, little finger from the thumb's side across the palm
    lengths = (0.93, 1.0, 0.95, 0.75) if thumb_side < 0 else (0.75, 0.95, 1.0, 0.93)
    for offset, scale in zip((-0.72, -0.24, 0.24, 0.72), lengths):
        angle = phi + spread * (offset / 0.72) + float(rng.uniform(-0.04, 0.04))
        direction = rotation(angle) @ np.array([1.0, 0.0])
        start = palm + along * 0.72 * pl + perp * offset * pw
        end = start + direction * fl * scale
        curl = perp * float(rng.uniform(-0.05, 0.05)) * fl
        layers.append(cv.polyline([start, (start + end) / 2 + curl, end], [fr, 0.95 * fr, 0.82 * fr],
                                  solid(jitter(rng, tone, 0.012), **shade)))
    return {"kind": "hand", "params": {"target": target, "pose": pose, "skin": tone}, "layers": layers}
