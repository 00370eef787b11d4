"""face-api's FaceExpressionNet (``@vladmandic/face-api`` 1.7.15, from face-api.js) in PyTorch.

The network, as ``FaceFeatureExtractor`` + ``FaceExpressionNet`` run it in tfjs::

    (B, 3, 112, 112) RGB, (pixel - channel mean) / 255
      dense block 0  (32)   first conv: plain conv 3x3 / 2   -> (B, 32, 56, 56)
      dense block 1  (64)                                    -> (B, 64, 28, 28)
      dense block 2  (128)                                   -> (B, 128, 14, 14)
      dense block 3  (256)                                   -> (B, 256, 7, 7)
      average pool 7x7 / 2 'valid'                           -> (B, 256)
      fully connected 256 -> 7                               -> (B, 7) logits (tfjs applies softmax)

A dense block runs four convs, each but the first a depthwise-separable conv (3x3 depthwise, 1x1
pointwise, one bias after both); the first has stride 2, and every conv reads the ReLU of the
sum of all earlier outputs of the block::

    o1 = relu(conv0(x)); o2 = conv1(o1); o3 = conv2(relu(o1 + o2)); o4 = conv3(relu(o1 + o2 + o3))
    out = relu(o1 + o2 + o3 + o4)

tfjs' 'same' padding puts the odd pixel after the image, which matters for the stride-2 convs
on even sizes; :class:`SameConv` pads explicitly.

Class order (``FACE_EXPRESSION_LABELS``): neutral, happy, sad, angry, fearful, disgusted, surprised.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .mini_xception import tf_same_padding

INPUT_SIZE = 112
NATIVE_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
BLOCK_CHANNELS = (32, 64, 128, 256)
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceFeatureExtractor.forwardInput, on the 0..255 scale


def preprocess(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, 112, 112) RGB in [0, 1] -> (B, 3, 112, 112) ``(255 * pixels - mean_rgb) / 255``."""
    mean = pixels.new_tensor(MEAN_RGB).view(1, 3, 1, 1)
    return (pixels * 255.0 - mean) / 255.0


class SameConv(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's 'same' padding (odd pixel after): (B, C, H, W) ->
    (B, C_out, ceil(H/s), ceil(W/s))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = tf_same_padding(x.shape[-2], kh, sh)
        left, right = tf_same_padding(x.shape[-1], kw, sw)
        return super().forward(F.pad(x, (left, right, top, bottom)))


class SeparableConv(nn.Module):
    """tfjs ``separableConv2d(x, depthwise, pointwise, stride, 'same') + bias``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = SameConv(in_channels, in_channels, 3, stride=stride, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class DenseBlock(nn.Module):
    """``denseBlock4``: (B, C_in, H, W) -> (B, C_out, ceil(H/2), ceil(W/2))."""

    def __init__(self, in_channels: int, out_channels: int, first: bool = False) -> None:
        super().__init__()
        self.conv0 = (SameConv(in_channels, out_channels, 3, stride=2) if first
                      else SeparableConv(in_channels, out_channels, stride=2))
        self.conv1 = SeparableConv(out_channels, out_channels)
        self.conv2 = SeparableConv(out_channels, out_channels)
        self.conv3 = SeparableConv(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = torch.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(torch.relu(out1 + out2))
        out4 = self.conv3(torch.relu(out1 + (out2 + out3)))
        return torch.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    """``model(x)``: (B, 3, 112, 112) normalised RGB (see :func:`preprocess`) -> (B, 7) logits."""

    def __init__(self, num_classes: int = len(NATIVE_LABELS)) -> None:
        super().__init__()
        channels = (3, *BLOCK_CHANNELS)
        self.dense = nn.ModuleList(DenseBlock(c_in, c_out, first=i == 0)
                                   for i, (c_in, c_out) in enumerate(zip(channels, channels[1:])))
        self.fc = nn.Linear(BLOCK_CHANNELS[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 112, 112) -> (B, 256): the bottleneck the classifier reads."""
        for block in self.dense:
            x = block(x)
        return F.avg_pool2d(x, 7, stride=2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
