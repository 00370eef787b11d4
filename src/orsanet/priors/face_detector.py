"""BlazeFace short-range face detector (MediaPipe 0.10.21's ``face_detection_short_range``) in PyTorch.

The pipeline follows MediaPipe's graph: letterbox the image into a 128x128 square (black
borders, pixels scaled to [-1, 1]), run the network, decode 896 anchor-relative boxes with six
keypoints, keep scores above a threshold, merge overlaps by weighted non-maximum suppression,
and undo the letterbox. Weights come from ``weights/face_detector.safetensors`` (see
``scripts/convert_mediapipe_weights.py``).

This file also holds the pieces shared with :mod:`orsanet.priors.face_mesh`: TFLite-style
"SAME" padding, the residual depthwise block both networks are made of, and the rotated
square crop (:func:`crop_rois`) with MediaPipe's pixel convention.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orsanet.onnx_runtime import CpuFastPath

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DETECTOR_WEIGHTS = WEIGHTS_DIR / "face_detector.safetensors"

INPUT_SIZE = 128
NUM_ANCHORS = 896
# Keypoint order of the detector: right eye, left eye, nose tip, mouth centre, right ear
# tragion, left ear tragion ("right" = the subject's right, i.e. the image's left side).
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
KEYPOINT_FLIP = (1, 0, 2, 3, 5, 4)



# --------------------------------------------------------------------------- building blocks
def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad ``x (B, C, H, W)`` the way TensorFlow's ``SAME`` does (extra pixel at the end)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: W then H
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


def _activation(kind: str | None, channels: int) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "prelu":
        return nn.PReLU(channels)
    return nn.Identity()


class ConvAct(nn.Module):
    """Convolution (``same`` or ``valid`` padding) followed by an optional ReLU / PReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, act: str | None = None,
                 padding: str = "same"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.act = _activation(act, cout)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = pad_same(x, self.conv.kernel_size[0], self.conv.stride[0])
        return self.act(self.conv(x))


class BlazeBlock(nn.Module):
    """``act(shortcut(x) + pw(dw(x)))``: 3x3 depthwise then 1x1 conv; the shortcut max-pools
    (stride 2) and zero-pads channels when the width grows. ``(B, cin, H, W) -> (B, cout, H/s, W/s)``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        # At stride 1 "SAME" padding is symmetric, so the convolution pads itself (no copy of x).
        self.dw = nn.Conv2d(cin, cin, 3, stride, padding=1 if stride == 1 else 0, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)
        self.act = _activation(act, cout)
        self.stride, self.extra_channels = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pw(self.dw(x if self.stride == 1 else pad_same(x, 3, self.stride)))
        if self.stride == 2:
            x = F.max_pool2d(x, 2)
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(x + h)


def load_converted(module: nn.Module, path: Path, extra_keys: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Load converted float16 weights into ``module`` (strict); return the non-parameter ``extra_keys``."""
    from safetensors.torch import load_file

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/convert_mediapipe_weights.py")
    from orsanet.weight_loading import load_weights

    state = load_file(str(path))
    extras = {k: state.pop(k) for k in extra_keys}
    load_weights(module, state, str(path), dtype=torch.float32)
    return extras


# ------------------------------------------------------------------------------- the network
class BlazeFaceNet(nn.Module):
    """BlazeFace short range. ``(B, 3, 128, 128)`` RGB in [-1, 1] ->
    score logits ``(B, 896)`` and raw regressions ``(B, 896, 16)`` (box x, y, w, h, 6 keypoints x, y
    in 128-px input units relative to the anchors)."""

    BLOCKS = ((24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2),
              (48, 56, 1), (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1),  # -> 16x16 tap
              (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1))  # -> 8x8 tap
    TAP_16 = 10  # index of the block whose output feeds the 16x16 heads

    def __init__(self):
        super().__init__()
        self.stem = ConvAct(3, 24, 5, 2, "relu")
        self.backbone = nn.ModuleList(BlazeBlock(i, o, s, "relu") for i, o, s in self.BLOCKS)
        self.classifier_8 = ConvAct(88, 2, 1)
        self.regressor_8 = ConvAct(88, 32, 1)
        self.classifier_16 = ConvAct(96, 6, 1)
        self.regressor_16 = ConvAct(96, 96, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for i, block in enumerate(self.backbone):
            x = block(x)
            if i == self.TAP_16:
                fine = x  # (B, 88, 16, 16)
        b = x.shape[0]

        def flat(t: torch.Tensor, k: int) -> torch.Tensor:  # (B, A*k, H, W) -> (B, H*W*A, k)
            return t.permute(0, 2, 3, 1).reshape(b, -1, k)

        scores = torch.cat([flat(self.classifier_8(fine), 1), flat(self.classifier_16(x), 1)], 1)
        boxes = torch.cat([flat(self.regressor_8(fine), 16), flat(self.regressor_16(x), 16)], 1)
        return scores.squeeze(-1), boxes


def ssd_anchor_centers() -> torch.Tensor:
    """Anchor centres ``(896, 2)`` in [0, 1] (x, y): MediaPipe's SSD anchors for this model
    (strides 8, 16, 16, 16; 2 anchors per cell at 16x16, 6 per cell at 8x8; fixed unit size)."""
    centers = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        c = torch.stack([xs, ys], -1).reshape(-1, 1, 2).float().add(0.5).div(grid)
        centers.append(c.expand(-1, per_cell, -1).reshape(-1, 2))
    return torch.cat(centers)


# ------------------------------------------------------------------------------- image input
def to_image_list(images, dtype: torch.dtype | None = torch.float32) -> list[torch.Tensor]:
    """uint8 ``(H, W, 3)`` arrays / tensors, a list of them, or a ``(B, H, W, 3)`` batch ->
    list of ``(3, H, W)`` tensors in [0, 255], of ``dtype`` (None: as given). Grey ``(H, W)``
    images are repeated to RGB."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim in (2, 3):
        images = [images]
    out = []
    for img in images:
        if isinstance(img, np.ndarray):
            img = np.ascontiguousarray(img) if img.flags.writeable else np.array(img)
        t = torch.as_tensor(img)
        if t.ndim == 2:
            t = t[..., None].expand(-1, -1, 3)
        if t.shape[-1] == 4:
            t = t[..., :3]
        if t.shape[-1] != 3:
            raise ValueError(f"expected HWC RGB images, got shape {tuple(t.shape)}")
        out.append(t.permute(2, 0, 1) if dtype is None else t.permute(2, 0, 1).to(dtype))
    return out


def crop_rois(image: torch.Tensor, rois: torch.Tensor, size: int, padding_mode: str = "zeros",
              like_opencv: bool = True) -> torch.Tensor:
    """Rotated square crops, resampled bilinearly to ``size``: ``image (C, H, W)`` in [0, 255],
    ``rois (N, 5)`` = centre x, centre y, width, height (pixels), rotation (radians, clockwise
    in image coordinates) -> ``(N, C, size, size)``.

    Uses MediaPipe's convention: the ROI's corners map onto the output's corners, i.e. output
    pixel ``u`` reads the source at ``cx + R (u / size - 1/2) * w`` in pixel-index coordinates.
    ``padding_mode`` is ``"zeros"`` (black) or ``"border"`` (replicate) outside the image.
    ``like_opencv`` mimics MediaPipe's uint8 OpenCV warp: sample positions snapped to 1/32 px
    and results rounded half up to integers (this moves detector scores by up to ~0.01).
    """
    if like_opencv and not rois[:, 4].any():
        return _crop_upright(image, rois, size, padding_mode)
    return _crop_rotated(image, rois, size, padding_mode, like_opencv)


def _crop_rotated(image: torch.Tensor, rois: torch.Tensor, size: int, padding_mode: str,
                  like_opencv: bool) -> torch.Tensor:
    """``crop_rois`` for any ROIs: every output pixel sampled with ``grid_sample``."""
    image = image if image.is_floating_point() else image.float()
    n = rois.shape[0]
    h, w = image.shape[-2:]
    u = torch.arange(size, device=image.device, dtype=image.dtype) / size - 0.5  # (S,)
    cos, sin = rois[:, 4].cos(), rois[:, 4].sin()
    lx = u.view(1, 1, size) * rois[:, 2].view(n, 1, 1)  # local offsets (N, 1, S)
    ly = u.view(1, size, 1) * rois[:, 3].view(n, 1, 1)  # (N, S, 1)
    px = rois[:, 0].view(n, 1, 1) + cos.view(n, 1, 1) * lx - sin.view(n, 1, 1) * ly
    py = rois[:, 1].view(n, 1, 1) + sin.view(n, 1, 1) * lx + cos.view(n, 1, 1) * ly
    src = image.unsqueeze(0).expand(n, -1, -1, -1)
    if like_opencv:  # float64: exact x.5 ties (values are multiples of 1/1024) must round up
        px, py = torch.round(px.double() * 32) / 32, torch.round(py.double() * 32) / 32
        src = src.double()
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)  # (N, S, S, 2)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return torch.floor(out + (0.5 + 1e-6)).to(image.dtype) if like_opencv else out


def _crop_upright(image: torch.Tensor, rois: torch.Tensor, size: int, padding_mode: str) -> torch.Tensor:
    """``crop_rois(..., like_opencv=True)`` for unrotated ROIs, without resampling the whole image:
    the sampling is separable, so only the two source rows and columns around each output row and
    column are read (in the image's own dtype). The result is the same integers in float32: the
    weights are multiples of 1/32 and the pixels integers up to 255, so every sum is exact."""
    h, w = image.shape[-2:]
    pixels = image.permute(1, 2, 0)  # (H, W, C): gathering rows and columns is fastest on photos' own layout
    u = torch.arange(size, device=image.device, dtype=torch.float32) / size - 0.5  # (S,)
    crops = []
    for cx, cy, width, height, _ in rois.float():
        # sample positions in pixel-index coordinates (S,): computed in float32 as _crop_rotated does
        x = (torch.round((cx + u * width).double() * 32) / 32).float()
        y = (torch.round((cy + u * height).double() * 32) / 32).float()
        x0, y0 = x.floor(), y.floor()
        columns, rows = torch.cat([x0, x0 + 1]).long(), torch.cat([y0, y0 + 1]).long()  # (2S,)
        wx, wy = torch.cat([1 - (x - x0), x - x0]), torch.cat([1 - (y - y0), y - y0])  # their weights (2S,)
        if padding_mode == "zeros":  # outside the image reads black
            wx, wy = wx * ((columns >= 0) & (columns < w)), wy * ((rows >= 0) & (rows < h))
        patch = pixels.index_select(0, rows.clamp(0, h - 1)).index_select(1, columns.clamp(0, w - 1))
        patch = patch.permute(2, 0, 1).float() * wx  # (C, 2S, 2S), columns weighted
        across = patch[..., :size] + patch[..., size:]  # (C, 2S, S)
        across = across * wy[:, None]
        crops.append(torch.floor(across[:, :size] + across[:, size:] + 0.5))
    dtype = image.dtype if image.is_floating_point() else torch.float32
    return torch.stack(crops).to(dtype)


def letterbox_roi(height: int, width: int) -> torch.Tensor:
    """The square ROI ``(5,)`` that letterboxes a whole image (centred, side = longer edge)."""
    return torch.tensor([width / 2, height / 2, max(height, width), max(height, width), 0.0])


# ------------------------------------------------------------------------------------ results
@dataclass
class Detection:
    """One face: ``box`` (x0, y0, x1, y1) pixels, ``score`` in [0, 1], ``keypoints (6, 2)``
    pixels in :data:`KEYPOINT_NAMES` order."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    def flipped(self, width: int) -> "Detection":
        """The same detection in the horizontally mirrored image of width ``width``."""
        x0, y0, x1, y1 = self.box
        kp = self.keypoints[list(KEYPOINT_FLIP)].copy()
        kp[:, 0] = width - kp[:, 0]
        return Detection(np.array([width - x1, y0, width - x0, y1], np.float32), self.score, kp)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix of xyxy boxes ``a (N, 4)`` and ``b (M, 4)`` -> ``(N, M)``."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda t: (t[:, 2:] - t[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-12)


def weighted_nms(boxes: torch.Tensor, points: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
                 weighted: bool = True) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """MediaPipe-style NMS. Repeatedly take the best remaining box and all others overlapping it
    by more than ``iou_threshold``; with ``weighted`` the cluster's boxes and keypoints are
    averaged with score weights. ``boxes (N, 4)``, ``points (N, K, 2)``, ``scores (N,)``."""
    order = scores.argsort(descending=True)
    boxes, points, scores = boxes[order], points[order], scores[order]
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(scores), dtype=torch.bool, device=scores.device)
    kept = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        cluster = alive & (iou[i] > iou_threshold)
        cluster[i] = True
        alive &= ~cluster
        if weighted:
            wgt = scores[cluster] / scores[cluster].sum()
            box = (boxes[cluster] * wgt[:, None]).sum(0)
            pts = (points[cluster] * wgt[:, None, None]).sum(0)
        else:
            box, pts = boxes[i], points[i]
        kept.append((box, pts, float(scores[i])))
    return kept


# ------------------------------------------------------------------------------- the detector
class FaceDetector(nn.Module):
    """Batched BlazeFace detection on images of any size (letterboxed to ``input_size`` px: 128)."""

    input_size = INPUT_SIZE
    network = BlazeFaceNet  # what a subclass changes: the network, its anchors, its input size
    anchor_centers = staticmethod(ssd_anchor_centers)

    def __init__(self, weights: Path | str | None = DETECTOR_WEIGHTS, runtime: str | None = None):
        """``runtime``: where the network runs on the CPU (``orsanet.onnx_runtime``): ``auto`` (ONNX
        Runtime where installed), ``pytorch`` or ``onnxruntime`` (None: ``$ORSANET_RUNTIME``); on a GPU, PyTorch."""
        super().__init__()
        self.net = self.network()
        self.register_buffer("anchors", self.anchor_centers(), persistent=False)
        if weights is not None:
            load_converted(self.net, Path(weights))
        self.net.to(memory_format=torch.channels_last)  # depthwise convolutions run ~1.6x faster on CPU
        self.eval()
        self.fast = CpuFastPath(type(self.net).__name__, runtime)

    def run_network(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network on ``x (B, 3, S, S)``: score logits and raw regressions."""
        return self.fast(self.net, x.contiguous(memory_format=torch.channels_last))

    @property
    def device(self) -> torch.device:
        return self.anchors.device

    def preprocess(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> network input ``(B, 3, S, S)`` in [-1, 1] (S = ``input_size``) and letterbox ROIs ``(B, 5)``."""
        crops, rois = [], []
        for img in to_image_list(images, dtype=None):  # uint8 stays uint8: crop_rois reads only what it samples
            roi = letterbox_roi(*img.shape[-2:]).to(self.device)
            crops.append(crop_rois(img.to(self.device), roi[None], self.input_size, "zeros"))
            rois.append(roi)
        return torch.cat(crops) / 127.5 - 1.0, torch.stack(rois)

    def decode(self, raw_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw regressions ``(B, A, 16)`` -> boxes ``(B, A, 4)`` xyxy and keypoints ``(B, A, 6, 2)``,
        both in [0, 1] letterbox coordinates (A anchors: 896 here)."""
        pts = raw_boxes.reshape(*raw_boxes.shape[:2], 8, 2) / self.input_size
        center = pts[:, :, 0] + self.anchors
        half = pts[:, :, 1] / 2
        boxes = torch.cat([center - half, center + half], -1)
        return boxes, pts[:, :, 2:] + self.anchors[:, None]

    @torch.no_grad()
    def detect(self, images, min_confidence: float = 0.5, iou_threshold: float = 0.3,
               weighted: bool = True, max_faces: int | None = None) -> list[list[Detection]]:
        """Faces in each image, best first: a list (per image) of :class:`Detection` in pixels."""
        x, rois = self.preprocess(images)
        logits, raw = self.run_network(x)
        scores = torch.sigmoid(logits.clamp(-100, 100))
        boxes, points = self.decode(raw)
        results = []
        for b in range(x.shape[0]):
            keep = scores[b] >= min_confidence
            found = weighted_nms(boxes[b, keep], points[b, keep], scores[b, keep], iou_threshold, weighted)
            # undo the letterbox: [0, 1] of the square ROI -> image pixels
            side, x0, y0 = rois[b, 2], rois[b, 0] - rois[b, 2] / 2, rois[b, 1] - rois[b, 3] / 2
            offset = torch.stack([x0, y0])
            dets = [Detection((box.view(2, 2) * side + offset).reshape(4).cpu().numpy(), score,
                              (pts * side + offset).cpu().numpy()) for box, pts, score in found]
            results.append(dets[:max_faces] if max_faces else dets)
        return results
