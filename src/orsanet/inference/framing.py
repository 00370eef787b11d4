"""Faces in a photo, framed the way the model's training faces were.

``FaceFinder`` runs the face detector on the whole photo and, for faces too small for it, on tiles
around the faces the full-range detector proposes or on grids of tiles (``orsanet.priors.face_search``).
Each face's detector box becomes the square the input contract's framing says (``InputContract.frame``), cut out and resized into the model's
pixels (``InputContract.cut``): the same ``(3, S, S)`` crop a dataset face gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from orsanet.contract import InputContract
from orsanet.priors.face_detector import Detection
from orsanet.priors.face_search import DEFAULT_MIN_FACE, SEARCHES, find_faces

# A face found only in a tile of the photo (see orsanet.priors.face_search) is kept when the face
# mesh measured on its frame says a face is there with at least this presence (FacePipeline).
# Measured with scripts/measure_face_search.py (presence on the default contract's 56-px frame): on 20
# faceless sample pictures of scikit-image the tiles gave 14 false candidates, none above 0.03; the
# example face pasted at box sides 26-120 px scored 1.0, and its masked copy 0.44-0.99 at most sizes
# (0.11 at 120 px, lost).
CANDIDATE_SCORE = 0.4


@dataclass
class FoundFace:
    """A detector hit: its box and score, the framed square, and whether it needs confirming."""

    detection: Detection
    frame: tuple[float, float, float, float]
    candidate: bool  # found only in a tile: keep it if the prior sees a face


class FaceFinder:
    """Detector + small-face search: ``finder(photo) -> [FoundFace, ...]`` (whole-photo faces first).
    ``search``: ``cascade`` (the full-range detector proposes where to look again) or ``tiles``
    (grids of tiles everywhere), see ``orsanet.priors.face_search``."""

    def __init__(self, contract: InputContract, device: str | torch.device = "cpu", min_confidence: float = 0.5,
                 min_face: float = DEFAULT_MIN_FACE, search: str = "cascade") -> None:
        from orsanet.priors import FaceDetector
        from orsanet.priors.face_detector_full_range import FullRangeFaceDetector

        if search not in SEARCHES:
            raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
        self.contract, self.min_confidence, self.min_face = contract, min_confidence, min_face
        self.detector = FaceDetector().to(device)
        self.proposer = FullRangeFaceDetector().to(device) if search == "cascade" else None

    def __call__(self, photo: Image.Image) -> list[FoundFace]:
        whole, candidates = find_faces(self.detector, np.asarray(photo), self.min_confidence, self.min_face,
                                       proposer=self.proposer)
        return ([FoundFace(d, self.contract.frame(d.box), False) for d in whole]
                + [FoundFace(d, self.contract.frame(d.box), True) for d in candidates])

    def pixels(self, photo: Image.Image, faces: list[FoundFace]) -> torch.Tensor:
        """The framed crops of ``faces`` -> ``(F, 3, S, S)`` pixels in [0, 1]."""
        if not faces:
            size = self.contract.input_size
            return torch.zeros(0, 3, size, size)
        return torch.stack([self.contract.cut(photo, face.frame) for face in faces])

    def best_face(self, photo: Image.Image) -> FoundFace | None:
        """The most confident face found on the whole photo (tiles only when it has none), or None."""
        found = self(photo)
        whole = [face for face in found if not face.candidate]
        pool = whole or found
        return max(pool, key=lambda face: face.detection.score) if pool else None


def box_of_frame(frame, contract: InputContract) -> tuple[float, float, float, float]:
    """The detector box whose framing is ``frame`` (the inverse of ``InputContract.frame``): to give
    the pipeline a face whose square is known, e.g. a dataset face pasted into a photo."""
    x0, y0, x1, y1 = (float(v) for v in frame)
    width = (x1 - x0) / contract.framing["scale"]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + contract.framing["shift_up"] * width
    return cx - width / 2, cy - width / 2, cx + width / 2, cy + width / 2
