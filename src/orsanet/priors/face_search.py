"""Every face of a photo, small ones included, with the short-range face detector.

The detector (BlazeFace short range) sees an image letterboxed to 128 px, so on a whole photo it
finds only faces of at least ``SMALLEST_FACE_SHARE`` of the photo's longer side: in a 4000-px
phone picture, nothing under ~560 px. Smaller faces are searched in square tiles of the photo,
each letterboxed to 128 px in turn. Two ways to choose the tiles:

- ``proposer=None`` (``--search tiles``): every tile of overlapping grids whose side doubles, from
  the tile whose smallest findable face is ``min_face`` up to the whole photo (on a 512-px photo:
  9 tiles besides the whole photo);
- a ``proposer`` (``--search cascade``, the default: BlazeFace full range, 192 px): one pass of it
  on the whole photo proposes the faces of at least ``PROPOSER_SHARE`` of the longer side (at a low
  score, masked faces included), and the short-range detector looks again only in one tile around
  each proposal; grids of tiles remain only for faces smaller than the proposer sees (none on a
  512-px photo). The short-range detector keeps framing every face: its boxes are what training's
  faces were framed by (the full-range boxes are ~10 % larger and sit higher).

Upscaled tiles also make the detector see faces in textures, so a face found only in a tile is a
*candidate*: the caller confirms it (``orsanet.predict`` asks the face mesh whether it sees a face).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from orsanet.priors.face_detector import Detection, FaceDetector, box_iou, weighted_nms

# Measured with scripts/measure_face_search.py: the example face pasted on a grey 1024-px canvas is
# found on the whole canvas with a 160-px box, not with a 120-px one; the tiles find it down to 26 px.
SMALLEST_FACE_SHARE = 0.14
SMALLEST_TILE = 64  # px of the photo: a tile is upscaled at most 2x
DEFAULT_MIN_FACE = 40  # px, the detector box of a FER2013-sized face (48-px frame)
MERGE_IOU = 0.3
# Measured with scripts/measure_face_search.py (the example face pasted on 1024- and 2048-px canvases):
# the full-range detector's boxes follow the face's size down to ~6 % of the longer side (below, they
# stay at ~9 px of its 192-px input whatever the face), and masked faces score 0.4-0.5 there.
PROPOSER_SHARE = 0.06
PROPOSAL_SCORE = 0.25
PROPOSAL_SHARE_IN_TILE = 0.3  # a proposal tile shows the proposed face at this share of its side
SEARCHES = ("cascade", "tiles")


def tile_origins(length: int, tile: int) -> list[int]:
    """Starts of tiles of side ``tile`` that cover ``length`` pixels, neighbours overlapping by at least half a tile."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile / 2)) + 1
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def tile_sides(long_side: int, min_face: float, seen_from: float | None = None) -> list[int]:
    """Tile sides of the passes that find faces down to ``min_face`` px in a photo whose longer side
    is ``long_side`` (empty when the whole photo already shows faces that small); with ``seen_from``,
    only the passes for faces smaller than ``seen_from`` px (a proposer finds the larger ones)."""
    sides: list[int] = []
    side = max(min_face / SMALLEST_FACE_SHARE, SMALLEST_TILE)
    largest = SMALLEST_FACE_SHARE * long_side if seen_from is None else min(seen_from, SMALLEST_FACE_SHARE * long_side)
    while side < long_side and largest > min_face and SMALLEST_FACE_SHARE * side < largest:
        sides.append(round(side))
        side *= 2
    return sides


def _inside_tile(box: np.ndarray, x: int, y: int, side: int, width: int, height: int) -> bool:
    """Whether a face found in the tile at ``(x, y)`` belongs to it: not larger than half the tile
    (the next pass sees it whole) and not touching an edge the tile shares with a neighbour."""
    x0, y0, x1, y1 = box
    if max(x1 - x0, y1 - y0) > side / 2:
        return False
    margin = 1.0
    cut_left = x > 0 and x0 < x + margin
    cut_top = y > 0 and y0 < y + margin
    cut_right = x + side < width and x1 > x + side - margin
    cut_bottom = y + side < height and y1 > y + side - margin
    return not (cut_left or cut_top or cut_right or cut_bottom)


def proposal_tiles(proposals: list[Detection], width: int, height: int) -> list[tuple[int, int, int]]:
    """``(x, y, side)`` of one square tile per proposed face: centred on it, the face at
    ``PROPOSAL_SHARE_IN_TILE`` of its side, moved (and if need be shrunk) to lie inside the photo."""
    tiles = []
    for proposal in proposals:
        x0, y0, x1, y1 = proposal.box
        side = round(min(max(max(x1 - x0, y1 - y0) / PROPOSAL_SHARE_IN_TILE, SMALLEST_TILE), width, height))
        x = int(min(max((x0 + x1) / 2 - side / 2, 0), width - side))
        y = int(min(max((y0 + y1) / 2 - side / 2, 0), height - side))
        tiles.append((x, y, side))
    return tiles


def _overlapping(detections: list[Detection], others: list[Detection], iou: float = MERGE_IOU) -> list[bool]:
    """For each of ``detections``, whether it overlaps one of ``others`` by more than ``iou``."""
    if not detections or not others:
        return [False] * len(detections)
    overlap = box_iou(torch.stack([torch.as_tensor(d.box, dtype=torch.float32) for d in detections]),
                      torch.stack([torch.as_tensor(d.box, dtype=torch.float32) for d in others])).amax(1)
    return (overlap > iou).tolist()


@torch.no_grad()
def find_faces(detector: FaceDetector, pixels: np.ndarray, min_confidence: float = 0.5,
               min_face: float = DEFAULT_MIN_FACE, batch: int = 32,
               proposer: FaceDetector | None = None) -> tuple[list[Detection], list[Detection]]:
    """Faces of an RGB photo ``(H, W, 3)`` uint8 -> (faces found on the whole photo, candidates found
    only in tiles), each best score first, boxes and keypoints in photo pixels. ``proposer`` (the
    full-range detector): tiles only around its proposals, and for faces smaller than it sees."""
    height, width = pixels.shape[:2]
    long_side = max(height, width)
    whole = detector.detect([pixels], min_confidence)[0]
    tiles: list[tuple[int, int, int, bool]] = []  # x, y, side, part of a grid (shares edges with neighbours)
    seen_from = None
    if proposer is not None and SMALLEST_FACE_SHARE * long_side > min_face:  # else the whole photo was enough
        seen_from = PROPOSER_SHARE * long_side
        proposals = [d for d in proposer.detect([pixels], PROPOSAL_SCORE)[0]
                     if max(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= min(seen_from, min_face)]
        proposals = [d for d, seen in zip(proposals, _overlapping(proposals, whole)) if not seen]
        tiles += [(x, y, side, False) for x, y, side in proposal_tiles(proposals, width, height)]
    for side in tile_sides(long_side, min_face, seen_from):
        tiles += [(x, y, side, True) for y in tile_origins(height, side) for x in tile_origins(width, side)]
    boxes, points, scores = [], [], []
    for start in range(0, len(tiles), batch):
        chunk = tiles[start:start + batch]
        crops = [pixels[y:y + side, x:x + side] for x, y, side, _ in chunk]
        for (x, y, side, grid), faces in zip(chunk, detector.detect(crops, min_confidence)):
            for face in faces:
                box = face.box + np.array([x, y, x, y], np.float32)
                if not grid or _inside_tile(box, x, y, side, width, height):
                    boxes.append(torch.from_numpy(box))
                    points.append(torch.from_numpy(face.keypoints + np.array([x, y], np.float32)))
                    scores.append(face.score)
    if not scores:
        return whole, []
    merged = weighted_nms(torch.stack(boxes), torch.stack(points), torch.tensor(scores), MERGE_IOU)
    candidates = [Detection(box.numpy(), score, pts.numpy()) for box, pts, score in merged]
    candidates = [d for d, seen in zip(candidates, _overlapping(candidates, whole)) if not seen]
    return whole, candidates
