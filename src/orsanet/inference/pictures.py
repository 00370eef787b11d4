"""Pictures of predictions: the photo with boxes, labels and landmarks, and one panel per face.

Each face panel shows, left to right: the frame the model saw with the parsing prior laid over it,
the frame with the Grad-CAM heatmap (where the model looked), and the class probability bars. The
faces must come from a run with ``explain=True`` for the overlays (without, the tiles say so).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from orsanet.inference.results import Face

PANEL = 160  # side of a crop tile in the face panels
# LaPa classes: background, skin, brows (2), eyes (2), nose, upper lip, inner mouth, lower lip, hair, and the
# occlusion-aware prior network's "occluded" (bright green: what the model knows it cannot see)
PARSING_COLOURS = np.array([[0, 0, 0], [255, 204, 153], [153, 76, 0], [153, 76, 0], [0, 153, 255], [0, 153, 255],
                            [255, 255, 0], [255, 0, 102], [102, 0, 51], [255, 0, 153], [80, 40, 20], [0, 230, 64]],
                           np.float32)


def parsing_colours(parsing: np.ndarray) -> np.ndarray:
    """Class probabilities ``(C, H, W)`` (11 LaPa classes, or 12 with "occluded") -> ``(H, W, 3)`` colours."""
    return np.einsum("chw,ck->hwk", parsing, PARSING_COLOURS[:len(parsing)])


def _heat_colours(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8 through matplotlib's 'jet' colour map."""
    from matplotlib import colormaps

    return (colormaps["jet"](values)[..., :3] * 255).astype(np.uint8)


def _blend(base: Image.Image, colours: np.ndarray, alpha: np.ndarray) -> Image.Image:
    """Lay ``colours (H, W, 3)`` over ``base`` with per-pixel ``alpha (H, W)`` in [0, 1]."""
    pixels = np.asarray(base, dtype=np.float32)
    out = pixels * (1 - alpha[..., None]) + colours.astype(np.float32) * alpha[..., None]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def _resize_map(values: np.ndarray, size: int) -> np.ndarray:
    """``(h, w)`` float map -> ``(size, size)`` (bilinear)."""
    image = Image.fromarray(values.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def face_panel(image: Image.Image, face: Face, labels: list[str]) -> Image.Image:
    """One face: frame + parsing overlay, frame + heatmap, probability bars -> ``(3*PANEL, PANEL)`` image."""
    crop = image.crop(tuple(round(v) for v in face.frame)).resize((PANEL, PANEL), Image.BILINEAR)
    if face.parsing is not None:
        probs = np.stack([_resize_map(channel, PANEL) for channel in face.parsing])  # (11 or 12, P, P)
        colours = parsing_colours(probs)
        parsed = _blend(crop, colours, 0.45 * (1 - probs[0]).clip(0, 1))
    else:
        parsed = crop.copy()
        ImageDraw.Draw(parsed).text((4, 4), "no prior" if face.heatmap is not None else "not explained",
                                    fill=(255, 64, 64))
    if face.heatmap is not None:
        heat = _resize_map(face.heatmap, PANEL).clip(0, 1)
        looked = _blend(crop, _heat_colours(heat), 0.5 * np.ones_like(heat))
    else:
        looked = crop.copy()
        ImageDraw.Draw(looked).text((4, 4), "not explained", fill=(255, 64, 64))
    bars = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
    draw = ImageDraw.Draw(bars)
    step = PANEL / max(1, len(labels))
    for i, name in enumerate(labels):
        p = face.probabilities.get(name, 0.0)
        y = int(i * step)
        colour = (220, 60, 60) if name == face.expression else (90, 120, 200)
        draw.rectangle([70, y + 3, 70 + int(85 * p), y + int(step) - 3], fill=colour)
        draw.text((2, y + 2), f"{name[:9]}", fill=(0, 0, 0))
    panel = Image.new("RGB", (3 * PANEL, PANEL), (255, 255, 255))
    for k, tile in enumerate((parsed, looked, bars)):
        panel.paste(tile, (k * PANEL, 0))
    return panel


def annotate(image: Image.Image, faces: list[Face], labels: list[str]) -> Image.Image:
    """The photo with every face's box, label and landmarks, and its panels stacked underneath."""
    scale = min(1.0, 1024 / max(image.size))
    shown = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR) \
        if scale < 1 else image.copy()
    draw = ImageDraw.Draw(shown)
    for face in faces:
        x0, y0, x1, y1 = (v * scale for v in face.box)
        draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=(0, 255, 0), width=2)
        if face.landmarks is not None:
            for x, y in face.landmarks[::3] * scale:
                draw.point((float(x), float(y)), fill=(255, 255, 0))
        label = f"{face.index}: {face.expression} {face.confidence:.0%}"
        tx, ty = max(0.0, x0), max(0.0, y0 - 14)  # a box that starts above or left of the picture
        draw.rectangle([tx, ty, tx + 7 * len(label), ty + 14], fill=(0, 0, 0))
        draw.text((tx + 2, ty + 1), label, fill=(0, 255, 0))
    panels = [face_panel(image, face, labels) for face in faces]
    width = max([shown.width] + [p.width for p in panels])
    canvas = Image.new("RGB", (width, shown.height + PANEL * len(panels)), (255, 255, 255))
    canvas.paste(shown, (0, 0))
    for k, panel in enumerate(panels):
        canvas.paste(panel, (0, shown.height + k * PANEL))
        ImageDraw.Draw(canvas).text((3 * PANEL + 6, shown.height + k * PANEL + 4), f"face {k}", fill=(0, 0, 0))
    return canvas
