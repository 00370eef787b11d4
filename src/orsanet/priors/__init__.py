"""Offline face priors: MediaPipe's face detector and 468-point face mesh ported to PyTorch,
and the soft parsing maps / heatmaps drawn from the mesh.

    from orsanet.priors import FaceDetector, FaceMesh, pad_face_crop, parsing_map

    detector, mesh = FaceDetector(), FaceMesh()
    faces = detector.detect(images, min_confidence=0.5)          # per image: [Detection, ...]
    fit, _ = mesh.fit_detected(images, detector, 0.3)            # (B, 468, 3) image pixels
    prior = parsing_map(fit.landmarks, image_size=(H, W), size=56)  # (B, 11, 56, 56)

Weights (Apache-2.0, converted from mediapipe 0.10.21 by ``scripts/convert_mediapipe_weights.py``)
live in ``priors/weights/``; see the ``NOTICE`` there. No mediapipe needed at run time.
"""

from .face_detector import BlazeFaceNet, Detection, FaceDetector
from .face_mesh import FaceMesh, FaceMeshNet, MeshResult, pad_face_crop, roi_from_detection, rois_from_landmarks
from .parsing_map import (CONTOUR_POINTS, LAPA_CLASSES, flip_heatmaps, flip_parsing_map, landmark_heatmaps,
                          parsing_labels, parsing_map, subset_flip_permutation)

__all__ = [
    "BlazeFaceNet", "Detection", "FaceDetector",
    "FaceMesh", "FaceMeshNet", "MeshResult", "pad_face_crop", "roi_from_detection", "rois_from_landmarks",
    "CONTOUR_POINTS", "LAPA_CLASSES", "flip_heatmaps", "flip_parsing_map", "landmark_heatmaps",
    "parsing_labels", "parsing_map", "subset_flip_permutation",
]
