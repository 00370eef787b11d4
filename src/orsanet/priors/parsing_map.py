"""Soft face-parsing maps (LaPa's 11 classes) and landmark heatmaps drawn from face-mesh points.

:func:`parsing_map` fills polygons of the 468-point MediaPipe mesh at 224 px (face oval ->
skin, then nose, brows, eyes, lips, inner mouth, each painted over the previous), and
area-averages the label image down to the requested size, giving per-pixel class
probabilities that sum to 1. Hair is never drawn (the mesh does not reach it).

The rasteriser is a vectorised scan-line fill in torch that tests pixel centres, so it is
exactly mirror-symmetric: the map of a mirrored face is the mirrored map with the left/right
channels swapped (:func:`flip_parsing_map`), to float precision. (Where a left and a right
polygon overlap, the image half decides, for the same reason.)

"Left" and "right" in the class names mean the *image's* left and right (the subject's right
brow is the "left brow"), as in the Face++ / LaPa 106-point convention. Flipping swaps them
either way, so only the channel naming depends on this choice.

The polygons use the contour index lists MediaPipe publishes with its face mesh
(``face_mesh_connections``: face oval, lips, eyes, eyebrows), ordered into closed loops; the
nose outline (bridge between the eyes down to the nostrils) is our own choice of mesh points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LAPA_CLASSES = ("background", "skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose",
                "upper_lip", "inner_mouth", "lower_lip", "hair")
NUM_CLASSES = len(LAPA_CLASSES)
FLIP_CHANNELS = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10)  # left <-> right brow and eye

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
NOSE = (168, 193, 245, 188, 174, 217, 126, 142, 97, 2, 326, 371, 355, 437, 399, 412, 465, 417)
# The subject's right eye / brow (image left) and left eye / brow (image right).
SUBJECT_RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
SUBJECT_LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
SUBJECT_RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
SUBJECT_LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
# Lips: outer and inner contour, each from the right mouth corner (61 / 78) to the left (291 / 308).
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)

# (class index, polygon) in painting order: later polygons cover earlier ones.
POLYGONS = (
    (1, FACE_OVAL),
    (6, NOSE),
    (2, SUBJECT_RIGHT_BROW), (3, SUBJECT_LEFT_BROW),
    (4, SUBJECT_RIGHT_EYE), (5, SUBJECT_LEFT_EYE),
    (7, UPPER_OUTER + UPPER_INNER[::-1]),
    (9, LOWER_OUTER + LOWER_INNER[::-1]),
    (8, UPPER_INNER + LOWER_INNER[::-1][1:-1]),
)
# All polygons padded to one length by repeating their last vertex (zero-length edges never
# cross a scan line), so they are filled in one vectorised pass.
_LONGEST = max(len(poly) for _, poly in POLYGONS)
_POLYGON_INDEX = torch.tensor([list(poly) + [poly[-1]] * (_LONGEST - len(poly)) for _, poly in POLYGONS])
_CHUNK = 8
# Every contour point once, sorted: a mirror-closed subset of the mesh for heatmaps.
CONTOUR_POINTS = tuple(sorted({i for _, poly in POLYGONS for i in poly}))


def _fill_polygons(verts: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Even-odd fill at pixel centres. ``verts (N, V, 2)`` closed polygons in pixels (x, y)
    -> ``(N, height, width)`` bool. A pixel is inside when an odd number of edge crossings of
    its row's centre line lie left of its centre; rows use a half-open rule at vertices."""
    p, q = verts, verts.roll(-1, dims=1)  # edges p -> q, (N, V, 2)
    yc = torch.arange(height, device=verts.device, dtype=verts.dtype).view(1, -1, 1) + 0.5
    py, qy = p[..., 1].unsqueeze(1), q[..., 1].unsqueeze(1)  # (N, 1, V)
    crosses = (py <= yc) != (qy <= yc)  # (N, H, V)
    t = (yc - py) / torch.where(qy == py, torch.ones_like(qy), qy - py)
    x = p[..., 0].unsqueeze(1) + t * (q[..., 0] - p[..., 0]).unsqueeze(1)  # crossing x, (N, H, V)
    # x < i + 1/2  <=>  i >= floor(x - 1/2) + 1: mark that first pixel, then a running sum counts
    first = (torch.floor(x - 0.5) + 1).clamp(0, width).long()
    first = torch.where(crosses, first, torch.full_like(first, width))  # non-crossings: off the row
    marks = torch.zeros(*x.shape[:2], width + 1, dtype=torch.int32, device=verts.device)
    marks.scatter_add_(2, first, torch.ones_like(first, dtype=torch.int32))
    return (marks[..., :width].cumsum(2, dtype=torch.int32) & 1).bool()


def parsing_labels(points: torch.Tensor, image_size: tuple[int, int], raster: int = 224) -> torch.Tensor:
    """Hard label image ``(B, raster, raster)`` (long, LaPa classes) from mesh points
    ``(B, 468, 2+)`` given in pixels of an image of size ``(H, W)``; NaN faces stay background."""
    if points.shape[0] > _CHUNK:
        return torch.cat([parsing_labels(c, image_size, raster) for c in points.split(_CHUNK)])
    h, w = image_size
    xy = points[..., :2].float() * torch.tensor([raster / w, raster / h], device=points.device)
    valid = ~xy.isnan().flatten(1).any(1)
    xy = torch.nan_to_num(xy, nan=-1.0)
    b, k = xy.shape[0], len(POLYGONS)
    inside = _fill_polygons(xy[:, _POLYGON_INDEX.to(points.device)].flatten(0, 1), raster, raster)
    inside = inside.view(b, k, raster, raster) & valid.view(-1, 1, 1, 1)
    labels = torch.zeros(b, raster, raster, dtype=torch.uint8, device=points.device)
    left_half = torch.arange(raster, device=points.device) < raster / 2
    painted = {}
    for j, (cls, _) in enumerate(POLYGONS):  # painter's order: later polygons win
        labels.masked_fill_(inside[:, j], cls)
        painted[cls] = inside[:, j]
        partner = FLIP_CHANNELS[cls]
        if partner != cls and partner in painted:
            # where a left/right pair overlaps, the image half decides (keeps flips exact)
            both = painted[partner] & inside[:, j]
            labels.masked_fill_(both & left_half, min(cls, partner))
            labels.masked_fill_(both & ~left_half, max(cls, partner))
    return labels.long()


def parsing_map(points: torch.Tensor, image_size: tuple[int, int], size: int = 56, raster: int = 224) -> torch.Tensor:
    """Soft parsing map ``(B, 11, size, size)``: class probabilities (summing to 1 per pixel)
    from mesh points ``(B, 468, 2+)`` in pixels of an ``(H, W)`` image, drawn at ``raster`` px
    and area-averaged down to ``size``."""
    if points.shape[0] > _CHUNK:  # small chunks stay in cache: much faster per face on CPU
        return torch.cat([parsing_map(c, image_size, size, raster) for c in points.split(_CHUNK)])
    labels = parsing_labels(points, image_size, raster)
    classes = torch.arange(NUM_CLASSES, device=labels.device).view(1, -1, 1, 1)
    onehot = (labels.unsqueeze(1) == classes).float()  # (B, 11, R, R)
    if size == raster:
        return onehot
    return F.interpolate(onehot, size=(size, size), mode="area")


def flip_parsing_map(parsing: torch.Tensor) -> torch.Tensor:
    """Mirror ``(B, 11, H, W)`` horizontally and swap the left/right brow and eye channels."""
    return parsing.flip(-1)[:, list(FLIP_CHANNELS)]


def landmark_heatmaps(points: torch.Tensor, image_size: tuple[int, int], size: int = 56,
                      sigma: float = 1.0) -> torch.Tensor:
    """Gaussian heatmaps ``(B, K, size, size)`` (peak 1, ``sigma`` in output pixels) for points
    ``(B, K, 2+)`` in pixels of an ``(H, W)`` image; NaN points give empty maps."""
    h, w = image_size
    u = points[..., 0].float() * (size / w) - 0.5  # centre in output pixel-index coordinates
    v = points[..., 1].float() * (size / h) - 0.5
    grid = torch.arange(size, device=points.device, dtype=torch.float32)
    gx = torch.exp(-((grid - u.unsqueeze(-1)) ** 2) / (2 * sigma ** 2))  # (B, K, W)
    gy = torch.exp(-((grid - v.unsqueeze(-1)) ** 2) / (2 * sigma ** 2))  # (B, K, H)
    return torch.nan_to_num(gy.unsqueeze(-1) * gx.unsqueeze(-2), nan=0.0)


def subset_flip_permutation(indices, full_permutation: torch.Tensor) -> torch.Tensor:
    """For heatmaps of mesh points ``indices`` (a mirror-closed subset), the channel permutation
    that mirrors them, from the mesh's ``full_permutation`` (e.g. ``FaceMesh.flip_permutation``)."""
    indices = [int(i) for i in indices]
    position = {m: k for k, m in enumerate(indices)}
    return torch.tensor([position[int(full_permutation[m])] for m in indices])


def flip_heatmaps(heatmaps: torch.Tensor, channel_permutation: torch.Tensor) -> torch.Tensor:
    """Mirror ``(B, K, H, W)`` heatmaps and reorder channels so point k becomes its mirror."""
    return heatmaps.flip(-1)[:, channel_permutation]
