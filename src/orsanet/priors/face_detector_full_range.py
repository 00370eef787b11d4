"""BlazeFace full-range face detector (MediaPipe 0.10.21's ``face_detection_full_range``) in PyTorch.

The full-range model finds faces that fill as little as a few percent of the image (a group
photo, a person a few metres away), where the short-range model of
:mod:`orsanet.priors.face_detector` is made for faces close to the camera. MediaPipe 0.10.21's
wheel ships it as ``face_detection_full_range_sparse.tflite`` (70 % of its 1x1 kernels are
zero); that is the model converted to ``weights/face_detector_full_range.safetensors`` by
``scripts/convert_mediapipe_weights.py``.

The pipeline is the short-range one with the full-range graph's options (read from MediaPipe's
``FaceDetectionFullRange`` graph): a 192x192 letterboxed input in [-1, 1], one SSD anchor
layer of stride 4 (a 48x48 grid, one fixed unit-size anchor per cell, 2304 anchors), box and
keypoint offsets in 192-px input units, weighted NMS at IoU 0.3 and a minimum score of 0.6.

The network: a 3x3 stem, a backbone of double depthwise-separable residual units
(96 -> 48 -> 24 -> 12 -> 6 px), a top-down feature pyramid (1x1 conv, 2x bilinear upsampling,
plus a 1x1 lateral of the backbone) back to 48x48, and two heads that predict on a 24x24 grid
with four sub-cells each (depth-to-space) -- i.e. one prediction per 48x48 cell. Every
convolution pads one zero pixel on each side (TFLite PAD + VALID), so the PyTorch convolutions
pad themselves symmetrically.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .face_detector import (WEIGHTS_DIR, ConvAct, Detection, FaceDetector)

FULL_RANGE_WEIGHTS = WEIGHTS_DIR / "face_detector_full_range.safetensors"

INPUT_SIZE = 192
GRID = 48  # SSD anchors: one layer, stride 4 -> 48x48 cells, one anchor each
NUM_ANCHORS = GRID * GRID
MIN_SCORE = 0.6  # MediaPipe's min_score_thresh for this model (the short-range one uses 0.5)


# --------------------------------------------------------------------------- building blocks
class PaddedConvAct(ConvAct):
    """:class:`ConvAct` whose convolution zero-pads ``pad`` pixels on every side (TFLite's
    explicit PAD before a VALID conv; at stride 2 this differs from TF ``SAME``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, act: str | None = None, pad: int = 0):
        super().__init__(cin, cout, kernel, stride, act, padding="valid")
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=pad)


class SeparableConv(nn.Module):
    """3x3 depthwise conv (stride 1 or 2, 1-px zero padding) then a 1x1 conv and an optional
    ReLU: ``(B, cin, H, W) -> (B, cout, H/s, W/s)``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, act: str | None = None):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, padding=1, groups=cin)
        self.pw = ConvAct(cin, cout, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class DoubleUnit(nn.Module):
    """``relu(x + b(a(x)))`` with ``a``: separable ``cin -> mid`` + ReLU and ``b``: separable
    ``mid -> cout``; the first unit of a stage (stride 2, or a width change) has no shortcut:
    ``relu(b(a(x)))``. ``(B, cin, H, W) -> (B, cout, H/s, W/s)``."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1):
        super().__init__()
        self.a = SeparableConv(cin, mid, stride, "relu")
        self.b = SeparableConv(mid, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.b(self.a(x))
        return F.relu(h + x if self.residual else h)


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TensorFlow's DEPTH_TO_SPACE in NCHW: ``(B, r*r*C, H, W) -> (B, C, r*H, r*W)`` with input
    channel ``(i*r + j)*C + c`` going to sub-pixel ``(i, j)`` of channel ``c`` (this is not
    ``pixel_shuffle``'s channel order)."""
    b, d, h, w = x.shape
    c = d // (block * block)
    return x.view(b, block, block, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c, h * block, w * block)


class SubpixelHead(nn.Module):
    """1x1 conv ``cin -> 4k``, 3x3 depthwise conv at stride 2, depth-to-space:
    ``(B, cin, H, W) -> (B, k, H, W)``."""

    def __init__(self, cin: int, channels: int):
        super().__init__()
        self.conv = ConvAct(cin, 4 * channels, 1)
        self.dw = nn.Conv2d(4 * channels, 4 * channels, 3, 2, padding=1, groups=4 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.dw(self.conv(x)), 2)


class PyramidLevel(nn.Module):
    """One top-down step: ``blocks(upsample2x(top(x)) + lateral(skip))``, bilinear with
    half-pixel centres. ``x (B, cin, H, W)``, ``skip (B, cskip, 2H, 2W) -> (B, cout, 2H, 2W)``."""

    def __init__(self, cin: int, cskip: int, cout: int, blocks: int):
        super().__init__()
        self.top = ConvAct(cin, cout, 1, act="relu")
        self.lateral = ConvAct(cskip, cout, 1, act="relu")
        self.blocks = nn.ModuleList(DoubleUnit(cout, cout // 2, cout) for _ in range(blocks))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.top(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = x + self.lateral(skip)
        for block in self.blocks:
            x = block(x)
        return x


# ------------------------------------------------------------------------------- the network
class BlazeFaceFullRangeNet(nn.Module):
    """BlazeFace full range. ``(B, 3, 192, 192)`` RGB in [-1, 1] -> score logits ``(B, 2304)``
    and raw regressions ``(B, 2304, 16)`` (box x, y, w, h, then 6 keypoints x, y, in 192-px
    input units relative to the anchors; anchor ``i`` is cell ``(i // 48, i % 48)``)."""

    # (cin, mid, cout, stride) per backbone unit: 96x96 (2 units), 48x48, 24x24, 12x12, 6x6
    BACKBONE = ((32, 8, 32, 1), (32, 8, 32, 1),
                (32, 16, 64, 2), (64, 16, 64, 1), (64, 16, 64, 1),
                (64, 32, 128, 2), (128, 32, 128, 1), (128, 32, 128, 1),
                (128, 48, 192, 2), (192, 48, 192, 1), (192, 48, 192, 1),
                (192, 96, 384, 2), (384, 96, 384, 1), (384, 96, 384, 1), (384, 96, 384, 1))
    # (cin, backbone unit whose output is the lateral input, cout, residual units): 12, 24, 48 px
    PYRAMID = ((384, 10, 96, 2), (96, 7, 64, 2), (64, 4, 48, 1))

    def __init__(self):
        super().__init__()
        self.stem = PaddedConvAct(3, 32, 3, 2, "relu", pad=1)
        self.backbone = nn.ModuleList(DoubleUnit(*spec) for spec in self.BACKBONE)
        self.decoder = nn.ModuleList(PyramidLevel(cin, self.BACKBONE[tap][2], cout, n)
                                     for cin, tap, cout, n in self.PYRAMID)
        self.classifier = SubpixelHead(48, 1)
        self.regressor = SubpixelHead(48, 16)
        self.taps = {tap for _, tap, _, _ in self.PYRAMID}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)  # (B, 32, 96, 96)
        skips = {}
        for i, unit in enumerate(self.backbone):
            x = unit(x)
            if i in self.taps:
                skips[i] = x
        for (_, tap, _, _), level in zip(self.PYRAMID, self.decoder):
            x = level(x, skips[tap])  # -> (B, 48, 48, 48) at the end
        b = x.shape[0]
        scores = self.classifier(x).reshape(b, NUM_ANCHORS)
        boxes = self.regressor(x).permute(0, 2, 3, 1).reshape(b, NUM_ANCHORS, 16)
        return scores, boxes


def full_range_anchor_centers() -> torch.Tensor:
    """Anchor centres ``(2304, 2)`` in [0, 1] (x, y): MediaPipe's SSD anchors for this model
    (one layer, stride 4, 48x48 cells in row-major order, one fixed unit-size anchor per cell)."""
    ys, xs = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).div(GRID)


# ------------------------------------------------------------------------------- the detector
class FullRangeFaceDetector(FaceDetector):
    """Batched full-range BlazeFace detection on images of any size (letterboxed to 192 px);
    same :meth:`detect` API as :class:`FaceDetector`, default minimum score 0.6."""

    input_size = INPUT_SIZE
    network = BlazeFaceFullRangeNet
    anchor_centers = staticmethod(full_range_anchor_centers)

    def __init__(self, weights: Path | str | None = FULL_RANGE_WEIGHTS, runtime: str | None = None):
        super().__init__(weights, runtime)

    @torch.no_grad()
    def detect(self, images, min_confidence: float = MIN_SCORE, iou_threshold: float = 0.3,
               weighted: bool = True, max_faces: int | None = None) -> list[list[Detection]]:
        """Faces in each image, best first: a list (per image) of :class:`Detection` in pixels."""
        return super().detect(images, min_confidence, iou_threshold, weighted, max_faces)
