"""The road of a face through recognition: detect, frame, priors, classify (and explain when asked).

    photo ─ FaceFinder: detector (+ tiles) ─ boxes ─ contract.frame ─ squares
          ─ contract.cut ─ pixels (F, 3, S, S) in [0, 1]
          ─ prior backend .measure ─ geometry (tile candidates the face mesh does not see are dropped here)
          ─ FaceModel.logits(pixels, geometry, flip) ─ probabilities
          ─ grad_cam (only with explain) ─ Face results

The faces of several photos (or video frames) are classified in one batch. The geometry is measured
on the framed crop, exactly as training measured it on a dataset face (``orsanet.priors.cache``) and
``eval`` does: one prior path.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from orsanet.face_model import FaceModel
from orsanet.inference.explain import grad_cam
from orsanet.inference.framing import CANDIDATE_SCORE, FaceFinder, FoundFace
from orsanet.inference.results import Face
from orsanet.priors.face_detector import Detection
from orsanet.priors.face_priors import MeshPriors


class FacePipeline:
    """``pipeline(photos) -> [[Face, ...] per photo]`` for one model."""

    def __init__(self, face: FaceModel, finder: FaceFinder, flip: bool = False) -> None:
        self.face, self.finder, self.flip = face, finder, flip
        # The geometry that gives landmarks for pictures: the model's own prior backend, or the face
        # mesh for models that extract their priors themselves.
        self.backend = face.priors or MeshPriors(face.device)
        # Tile candidates are confirmed by the face mesh's presence whatever the model's priors: the
        # occlusion-aware prior network's face score, even refitted on real faceless photos, gives
        # tiles of a held-out faceless photo up to 0.58 and face fragments up to 0.84, where the mesh
        # gives <= 0.04 (scripts/measure_face_search.py --model default --faceless DIR).
        self.confirmer = self.backend if isinstance(self.backend, MeshPriors) else MeshPriors(face.device)

    def given_faces(self, boxes) -> list[FoundFace]:
        """Faces whose detector boxes ``(x0, y0, x1, y1)`` the caller knows (no detection)."""
        return [FoundFace(Detection(np.asarray(box, np.float32), 1.0, np.zeros((6, 2), np.float32)),
                          self.face.contract.frame(box), False) for box in boxes]

    @torch.no_grad()
    def __call__(self, photos: list[Image.Image], explain: bool = False, boxes: list[list] | None = None,
                 found: list[list[FoundFace]] | None = None) -> list[list[Face]]:
        """The faces of ``photos``; ``boxes``: known face boxes per photo (no detection); ``found``: the
        photos' faces as ``self.finder`` found them already (e.g. in a thread ahead of this call)."""
        if found is None:
            found = [self.given_faces(b) for b in boxes] if boxes is not None else [self.finder(p) for p in photos]
        owner = [k for k, faces in enumerate(found) for _ in faces]
        faces = [face for per_photo in found for face in per_photo]
        if not faces:
            return [[] for _ in photos]
        pixels = torch.cat([self.finder.pixels(photo, per_photo) for photo, per_photo in zip(photos, found)])
        geometry = self.backend.measure(pixels)
        keep = torch.tensor([not face.candidate for face in faces])
        if not keep.all():
            candidates = (~keep).nonzero().flatten()
            seen = ({key: value[candidates.to(value.device)] for key, value in geometry.items()}
                    if self.confirmer is self.backend else self.confirmer.measure(pixels[candidates]))
            keep[candidates] = self.confirmer.face_score(seen).cpu() >= CANDIDATE_SCORE
        if not keep.any():
            return [[] for _ in photos]
        pixels, geometry = pixels[keep], {key: value[keep.to(value.device)] for key, value in geometry.items()}
        faces = [face for face, kept in zip(faces, keep) if kept]
        owner = [k for k, kept in zip(owner, keep) if kept]
        model_geometry = geometry if self.face.priors is not None else None
        probabilities = self.face.logits(pixels, model_geometry, flip=self.flip).softmax(1).cpu()
        heatmaps = parsing = None
        if explain and not hasattr(self.face, "model"):
            raise ValueError("explanations (Grad-CAM) need the PyTorch backend; this model runs on ONNX Runtime")
        if explain:
            heatmaps = grad_cam(self.face, pixels, model_geometry, probabilities.argmax(1)).numpy()
            if self.face.priors is not None:
                parsing = self.face.priors.draw(geometry).get("parsing_prior")
                parsing = parsing.cpu().numpy() if parsing is not None else None
        valid = self.backend.valid(geometry).cpu()
        points = self.backend.points(geometry)
        results: list[list[Face]] = [[] for _ in photos]
        labels = self.face.label_names
        for k, (face, photo_index) in enumerate(zip(faces, owner)):
            best = int(probabilities[k].argmax())
            x0, y0, x1, _ = face.frame
            landmarks = None
            if points is not None and valid[k]:
                landmarks = (points[k].cpu().numpy() * (x1 - x0) + np.array([x0, y0])).astype(np.float32)
            results[photo_index].append(Face(
                index=len(results[photo_index]), box=tuple(float(v) for v in face.detection.box), frame=face.frame,
                expression=labels[best], confidence=float(probabilities[k, best]),
                probabilities={name: float(p) for name, p in zip(labels, probabilities[k])},
                prior_valid=bool(valid[k]), detection_score=float(face.detection.score), landmarks=landmarks,
                heatmap=heatmaps[k] if heatmaps is not None else None,
                parsing=parsing[k] if parsing is not None and valid[k] else None))
        return results
