"""MediaPipe 0.10.21's 468-point face mesh (``face_landmark.tflite``) in PyTorch.

The network sees a 192x192 RGB crop in [0, 1] and returns 468 (x, y, z) points in crop pixels
plus a face-presence logit. The crop is a rotated square ROI, as in MediaPipe:

- from a detection: centred on the box, rotated so the eyes (keypoints 0 -> 1) are level,
  side = 1.5 x the longer box edge;
- from a previous fit ("re-crop"): the bounding box of all 468 points, rotated so the outer eye
  corners (points 33 -> 263) are level, side = 1.5 x its longer edge;
- or the whole image enlarged 1.5x (a tight face crop such as a FERPlus 48x48 face).

Landmarks are returned in image pixels (z in the same pixel scale, smaller = nearer the
camera). :func:`pad_face_crop` upscales a tight crop onto a black canvas so that the detector
sees some context. Weights come from ``weights/face_landmarks.safetensors``.

Known limitation (MediaPipe's, kept by the port): the mesh always returns a complete face, so
under occlusion it invents plausible parts (typically a closed, neutral mouth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orsanet.onnx_runtime import CpuFastPath

from .face_detector import (WEIGHTS_DIR, BlazeBlock, ConvAct, Detection, FaceDetector, crop_rois,
                            load_converted, to_image_list)

LANDMARK_WEIGHTS = WEIGHTS_DIR / "face_landmarks.safetensors"
INPUT_SIZE = 192
NUM_POINTS = 468
ROI_SCALE = 1.5
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # the subject's right / left outer eye corners


class FaceMeshNet(nn.Module):
    """``(B, 3, 192, 192)`` RGB in [0, 1] -> points ``(B, 468, 3)`` in 192-px crop units and
    face-presence logits ``(B,)``."""

    BACKBONE = ((16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2),
                (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1),
                (128, 128, 2), (128, 128, 1), (128, 128, 1))  # -> (B, 128, 6, 6)

    def __init__(self):
        super().__init__()
        self.stem = ConvAct(3, 16, 3, 2, "prelu")
        self.backbone = nn.Sequential(*(BlazeBlock(i, o, s, "prelu") for i, o, s in self.BACKBONE))
        self.mesh_head = nn.Sequential(
            BlazeBlock(128, 128, 2, "prelu"), BlazeBlock(128, 128, 1, "prelu"), BlazeBlock(128, 128, 1, "prelu"),
            ConvAct(128, 32, 1, act="prelu"), BlazeBlock(32, 32, 1, "prelu"),
            ConvAct(32, NUM_POINTS * 3, 3, 3, padding="valid"))
        self.flag_head = nn.Sequential(
            BlazeBlock(128, 128, 2, "prelu"), ConvAct(128, 32, 1, act="prelu"), BlazeBlock(32, 32, 1, "prelu"),
            ConvAct(32, 1, 3, 3, padding="valid"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(self.stem(x))
        points = self.mesh_head(features).reshape(-1, NUM_POINTS, 3)
        return points, self.flag_head(features).reshape(-1)


# ------------------------------------------------------------------------------------- ROIs
def _square_roi(center: torch.Tensor, size: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Stack ``(N, 2)`` centres, ``(N,)`` sides and angles into ``(N, 5)`` ROIs, scaled by 1.5."""
    side = size * ROI_SCALE
    return torch.stack([center[:, 0], center[:, 1], side, side, angle], -1)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return angle - 2 * math.pi * torch.floor((angle + math.pi) / (2 * math.pi))


def roi_from_detection(det: Detection) -> torch.Tensor:
    """ROI ``(5,)`` (cx, cy, side, side, angle) in pixels for a detector hit."""
    box = torch.as_tensor(det.box, dtype=torch.float32)
    kp = torch.as_tensor(det.keypoints, dtype=torch.float32)
    eye = kp[1] - kp[0]
    center = (box[:2] + box[2:]) / 2
    size = (box[2:] - box[:2]).max()
    return _square_roi(center[None], size[None], _wrap(torch.atan2(eye[1], eye[0]))[None])[0]


def rois_from_landmarks(points: torch.Tensor) -> torch.Tensor:
    """Re-crop ROIs ``(B, 5)`` from fitted image-pixel points ``(B, 468, 2+)``."""
    xy = points[..., :2]
    lo, hi = xy.amin(1), xy.amax(1)
    eye = xy[:, LEFT_EYE_OUTER] - xy[:, RIGHT_EYE_OUTER]
    return _square_roi((lo + hi) / 2, (hi - lo).amax(-1), _wrap(torch.atan2(eye[:, 1], eye[:, 0])))


def whole_image_roi(height: int, width: int, scale: float = ROI_SCALE) -> torch.Tensor:
    """ROI ``(5,)`` centred on the image, ``scale`` x its longer edge: for a tight face crop the
    default 1.5 gives the margin the mesh network was trained with (the rest is padding)."""
    side = float(max(height, width)) * scale
    return torch.tensor([width / 2, height / 2, side, side, 0.0])


def pad_face_crop(face, size: int = 192, face_size: int = 128) -> np.ndarray:
    """Upscale a tight face crop ``(H, W[, 3])`` uint8 to ``face_size`` (bilinear) and centre it
    on a black ``size x size`` RGB canvas -> ``(size, size, 3)`` uint8."""
    from PIL import Image

    face = np.asarray(face)
    img = Image.fromarray(face).convert("RGB").resize((face_size, face_size), Image.BILINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    off = (size - face_size) // 2
    canvas[off:off + face_size, off:off + face_size] = np.asarray(img)
    return canvas


# ---------------------------------------------------------------------------------- results
@dataclass
class MeshResult:
    """Fits for a batch: ``landmarks (B, 468, 3)`` image pixels (NaN where no ROI),
    ``presence (B,)`` face probability (0 where no ROI), ``rois (B, 5)`` the crops used."""

    landmarks: torch.Tensor
    presence: torch.Tensor
    rois: torch.Tensor

    def found(self, threshold: float = 0.5) -> torch.Tensor:
        """``(B,)`` bool: a face was fitted with presence above ``threshold`` (MediaPipe: 0.5)."""
        return self.presence >= threshold

    def normalized(self, sizes: list[tuple[int, int]]) -> torch.Tensor:
        """Points in [0, 1] image coordinates (z divided by the width, like MediaPipe)."""
        hw = torch.tensor([[w, h, w] for h, w in sizes], dtype=self.landmarks.dtype, device=self.landmarks.device)
        return self.landmarks / hw[:, None]


# ---------------------------------------------------------------------------------- the model
class FaceMesh(nn.Module):
    """The face-mesh network plus cropping, projection and optional re-crop refinement."""

    def __init__(self, weights: Path | str | None = LANDMARK_WEIGHTS, padding_mode: str = "border",
                 batch_size: int = 32, runtime: str | None = None):
        """``runtime``: where the network runs on the CPU (``orsanet.onnx_runtime``): ``auto`` (ONNX
        Runtime where installed), ``pytorch`` or ``onnxruntime`` (None: ``$ORSANET_RUNTIME``)."""
        super().__init__()
        self.fast = CpuFastPath("FaceMeshNet", runtime)
        self.net = FaceMeshNet()
        # flip_permutation[i]: index of the mesh point that mirrors point i (an involution).
        self.register_buffer("flip_permutation", torch.arange(NUM_POINTS), persistent=False)
        if weights is not None:
            extras = load_converted(self.net, Path(weights), extra_keys=("flip_permutation",))
            self.flip_permutation.copy_(extras["flip_permutation"])
        self.net.to(memory_format=torch.channels_last)  # depthwise convolutions run ~1.6x faster on CPU
        self.padding_mode = padding_mode  # outside the image: "border" (MediaPipe) or "zeros"
        self.batch_size = batch_size  # crops per network call (large batches are slower on CPU)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.flip_permutation.device

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops ``(B, 3, 192, 192)`` in [0, 1] -> points ``(B, 468, 3)`` in crop pixels and
        presence probabilities ``(B,)``."""
        points, logits = self.fast(self.net, crops.contiguous(memory_format=torch.channels_last))
        return points, torch.sigmoid(logits)

    @torch.no_grad()
    def fit(self, images, rois: torch.Tensor, refine: int = 0) -> MeshResult:
        """Fit one face per image inside ``rois (B, 5)`` (rows of NaN = no face: skipped);
        ``refine`` extra passes re-crop each face from its previous fit."""
        return self._fit(to_image_list(images), rois, refine)

    def _fit(self, imgs: list[torch.Tensor], rois: torch.Tensor, refine: int) -> MeshResult:
        """``imgs``: float ``(3, H, W)`` tensors in [0, 255]."""
        imgs = [im.to(self.device) for im in imgs]
        rois = rois.to(self.device, torch.float32)
        for _ in range(refine + 1):
            result = self._fit_once(imgs, rois)
            ok = ~result.landmarks[:, 0, 0].isnan()
            rois = rois.clone()
            if ok.any():
                rois[ok] = rois_from_landmarks(result.landmarks[ok])
        return result

    def _fit_once(self, imgs: list[torch.Tensor], rois: torch.Tensor) -> MeshResult:
        valid = ~rois.isnan().any(-1)
        n = len(imgs)
        landmarks = torch.full((n, NUM_POINTS, 3), float("nan"), device=self.device)
        presence = torch.zeros(n, device=self.device)
        todo = valid.nonzero().flatten().tolist()
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start:start + self.batch_size]
            crops = torch.cat([crop_rois(imgs[i], rois[i:i + 1], INPUT_SIZE, self.padding_mode) for i in idx])
            points, prob = self(crops / 255.0)
            landmarks[idx] = project(points, rois[idx])
            presence[idx] = prob
        return MeshResult(landmarks, presence, rois)

    @torch.no_grad()
    def fit_crops(self, images, refine: int = 1, margin: float = ROI_SCALE) -> MeshResult:
        """Tight face crops (no detector): the first ROI is the image enlarged ``margin`` times
        about its centre, then ``refine`` re-crops from the previous fit."""
        imgs = to_image_list(images)
        rois = torch.stack([whole_image_roi(*im.shape[-2:], margin) for im in imgs])
        return self._fit(imgs, rois, refine)

    @torch.no_grad()
    def fit_detected(self, images, detector: FaceDetector, min_confidence: float = 0.5,
                     refine: int = 0) -> tuple[MeshResult, list[Detection | None]]:
        """Detect (best face per image, MediaPipe's ``max_num_faces=1``), then fit the mesh."""
        imgs = to_image_list(images)
        dets = [d[0] if d else None for d in detector.detect([im.permute(1, 2, 0) for im in imgs], min_confidence)]
        rois = torch.stack([roi_from_detection(d) if d else torch.full((5,), float("nan")) for d in dets])
        return self._fit(imgs, rois, refine), dets

    def flip_points(self, points: torch.Tensor, width: float) -> torch.Tensor:
        """Mesh points ``(..., 468, 2+)`` of an image -> those of its mirror image (width ``width``)."""
        out = points[..., self.flip_permutation, :].clone()
        out[..., 0] = width - out[..., 0]
        return out


def project(points: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Crop points ``(N, 468, 3)`` in 192-px units -> image pixels through ``rois (N, 5)``."""
    scale = (rois[:, 2] / INPUT_SIZE).view(-1, 1)
    local_x = points[..., 0] * scale - rois[:, 2:3] / 2
    local_y = points[..., 1] * (rois[:, 3:4] / INPUT_SIZE) - rois[:, 3:4] / 2
    cos, sin = rois[:, 4:5].cos(), rois[:, 4:5].sin()
    x = rois[:, 0:1] + cos * local_x - sin * local_y
    y = rois[:, 1:2] + sin * local_x + cos * local_y
    return torch.stack([x, y, points[..., 2] * scale], -1)
