"""Image backbones: images -> a ``(B, D, 7, 7)`` grid of image features.

- ``ir50`` (the paper) and ``ir18`` (a light variant): improved-residual trunks at 112-224 px;
- ``resnet_compact``: a small residual net for 56-px crops on CPUs (the old default model);
- ``recognition_mobilefacenet`` (``_s8``: cut at stride 8) / ``recognition_mobileface``: face-recognition nets with shipped
  weights (``orsanet.models.face_recognition``; ``model.pretrained_backbone: true`` loads them).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from orsanet.contract import IMAGENET_MEAN, IMAGENET_STD
from orsanet.models.face_recognition import RECOGNITION_BACKBONES, FaceRecognitionGrid
from orsanet.models.ir50 import IR50, IR50_STAGES

# Stages (channels, units) of the improved-residual trunks; "ir18" is a light variant for CPUs and tests.
IR_STAGES = {"ir50": IR50_STAGES, "ir18": ((64, 2), (128, 2), (256, 2))}


class IRGrid(nn.Module):
    """IR-50 (three stages) and the official tokenisation: ``(B, 3, H, W)`` -> ``(B, 512, 7, 7)``.

    Quirk kept from the official code: the ``(B, 256, 14, 14)`` trunk output is reinterpreted in
    memory order as ``(B, 49, 1024)`` (a view, not a spatial patching), projected by
    ``token_proj`` = Linear(1024 -> 512) and laid back out as a 7x7 grid.
    """

    def __init__(self, dim: int = 512, stages: tuple[tuple[int, int], ...] = IR50_STAGES) -> None:
        super().__init__()
        self.trunk = IR50(stages)
        self.token_proj = nn.Linear(1024, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        tokens = self.token_proj(self.trunk(images).reshape(b, 49, 1024))  # (B, 49, D)
        return tokens.transpose(1, 2).reshape(b, -1, 7, 7)


class BasicBlock(nn.Module):
    """``relu(BN(conv3x3(relu(BN(conv3x3(x, stride))))) + shortcut(x))``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (
            nn.Identity() if in_channels == out_channels and stride == 1
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


# (channels, blocks) per stage of the compact net; each stage starts with a stride-2 block.
COMPACT_STAGES = ((48, 1), (96, 2), (192, 2))


class CompactGrid(nn.Module):
    """Small residual net for CPUs: ``(B, 3, 56, 56)`` -> ``(B, dim, 7, 7)``.

    A 3x3 stem at full resolution, three stride-2 stages (56 -> 28 -> 14 -> 7) of basic blocks
    and a 1x1 projection to the token width.
    """

    def __init__(self, dim: int = 192, stages: tuple[tuple[int, int], ...] = COMPACT_STAGES, stem: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        channels = stem
        for width, blocks in stages:
            for index in range(blocks):
                layers.append(BasicBlock(channels, width, 2 if index == 0 else 1))
                channels = width
        self.trunk = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.trunk(images))


IMAGE_BACKBONES = {name: functools.partial(IRGrid, stages=stages) for name, stages in IR_STAGES.items()}
IMAGE_BACKBONES["resnet_compact"] = CompactGrid
IMAGE_BACKBONES.update({f"recognition_{name}": functools.partial(FaceRecognitionGrid, net=net, stride8=stride8)
                        for name, (net, stride8) in RECOGNITION_BACKBONES.items()})


def backbone_normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the inputs a backbone was pretrained on: [-1, 1] for the face-recognition nets."""
    if name.startswith("recognition_"):
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return IMAGENET_MEAN, IMAGENET_STD
