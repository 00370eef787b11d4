"""Typed results of recognition: one ``Face`` per face found, one ``ImageResult`` per image or frame.

They sit below everything that draws or writes them (``pictures``, ``writers``, the CLI, the server):
``to_dict()`` / ``rows()`` give the plain rows ``orsanet predict --json`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One face: where it is, what the model says, and (when asked) why.

    ``box``: the face detector's box ``(x0, y0, x1, y1)`` in image pixels; ``frame``: the square cut
    out for the model (the input contract's framing); ``landmarks``: ``(N, 2)`` prior points in image
    pixels (None when the prior could not be measured); ``heatmap`` ``(7, 7)`` in [0, 1] (Grad-CAM over
    the frame) and ``parsing`` ``(11, h, w)`` (the parsing prior over the frame) only when an
    explanation was asked for.
    """

    index: int
    box: tuple[float, float, float, float]
    frame: tuple[float, float, float, float]
    expression: str
    confidence: float
    probabilities: dict[str, float]
    prior_valid: bool
    detection_score: float
    landmarks: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    parsing: np.ndarray | None = None

    def to_dict(self, landmarks: bool = False) -> dict:
        """A JSON-ready dict (landmarks only when asked: 468 points per face)."""
        values = {"face": self.index, "box": [round(float(v), 1) for v in self.box],
                  "expression": self.expression, "confidence": round(float(self.confidence), 4),
                  "probabilities": {name: round(float(p), 4) for name, p in self.probabilities.items()},
                  "prior_valid": bool(self.prior_valid), "detection_score": round(float(self.detection_score), 4)}
        if landmarks:
            values["landmarks"] = None if self.landmarks is None else np.round(self.landmarks.astype(np.float64), 1).tolist()
        return values


@dataclass
class ImageResult:
    """The faces of one image or video frame, or why it has none (``error``: unreadable, no face)."""

    file: str
    frame: int | None = None
    faces: list[Face] = field(default_factory=list)
    error: str | None = None

    def rows(self) -> list[dict]:
        """One row per face, or one error row: the records of ``predict --json`` / ``--csv``."""
        base = {"file": self.file, "frame": self.frame}
        if self.error is not None or not self.faces:
            return [{**base, "face": None, "box": None, "expression": None, "confidence": None, "probabilities": {},
                     "prior_valid": None, "detection_score": None, "error": self.error or "no face found"}]
        return [{**base, **face.to_dict(), "error": None} for face in self.faces]
