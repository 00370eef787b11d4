"""Every face of a photo, small ones included, with the short-range face detector.

The detector (BlazeFace short range) sees an image letterboxed to 128 px, so on a whole photo it
finds only faces of at least ``SMALLEST_FACE_SHARE`` of the photo's longer side: in a 4000-px
phone picture, nothing under ~560 px. Smaller faces are searched in overlapping square tiles of
the photo, each letterboxed to 128 px in turn. The tile passes double in side, from the tile whose
smallest findable face is ``min_face`` up to the whole photo.

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


def tile_origins(length: int, tile: int) -> list[int]:
    """Starts of tiles of side ``tile`` that cover ``length`` pixels, neighbours overlapping by at least half a tile."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile / 2)) + 1
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def tile_sides(long_side: int, min_face: float) -> list[int]:
    """Tile sides of the passes that find faces down to ``min_face`` px in a photo whose longer side
    is ``long_side`` (empty when the whole photo already shows faces that small)."""
    sides: list[int] = []
    side = max(min_face / SMALLEST_FACE_SHARE, SMALLEST_TILE)
    while side < long_side and SMALLEST_FACE_SHARE * long_side > min_face:
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


@torch.no_grad()
def find_faces(detector: FaceDetector, pixels: np.ndarray, min_confidence: float = 0.5,
               min_face: float = DEFAULT_MIN_FACE, batch: int = 32) -> tuple[list[Detection], list[Detection]]:
    """Faces of an RGB photo ``(H, W, 3)`` uint8 -> (faces found on the whole photo, candidates found
    only in tiles), each best score first, boxes and keypoints in photo pixels."""
    height, width = pixels.shape[:2]
    whole = detector.detect([pixels], min_confidence)[0]
    boxes, points, scores = [], [], []
    for side in tile_sides(max(height, width), min_face):
        tiles = [(x, y) for y in tile_origins(height, side) for x in tile_origins(width, side)]
        for start in range(0, len(tiles), batch):
            chunk = tiles[start:start + batch]
            crops = [pixels[y:y + side, x:x + side] for x, y in chunk]
            for (x, y), faces in zip(chunk, detector.detect(crops, min_confidence)):
                for face in faces:
                    box = face.box + np.array([x, y, x, y], np.float32)
                    if _inside_tile(box, x, y, side, width, height):
                        boxes.append(torch.from_numpy(box))
                        points.append(torch.from_numpy(face.keypoints + np.array([x, y], np.float32)))
                        scores.append(face.score)
    if not scores:
        return whole, []
    merged = weighted_nms(torch.stack(boxes), torch.stack(points), torch.tensor(scores), MERGE_IOU)
    candidates = [Detection(box.numpy(), score, pts.numpy()) for box, pts, score in merged]
    if whole:
        overlap = box_iou(torch.stack([torch.from_numpy(d.box) for d in candidates]),
                          torch.stack([torch.as_tensor(d.box, dtype=torch.float32) for d in whole])).amax(1)
        candidates = [d for d, iou in zip(candidates, overlap) if iou <= MERGE_IOU]
    return whole, candidates
