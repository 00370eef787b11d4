"""The input contract of a model: how a face must be framed and turned into the tensor it reads.

Every model file records one (metadata key ``"preprocessing"``); training, validation, ``eval``,
``predict``, the Python API and export all read the face through it, in two steps::

    face crop (PIL, any size/mode) ─ pixels(crop) ─> (3, S, S) float in [0, 1]   what priors and occluders see
                                     normalise(pixels) ─> (B, 3, S, S)           what the network reads

and, for photos, ``frame(box)`` turns a face detector's box into the square the training faces
were cut as. The ImageNet constants live here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLORS = ("rgb", "gray")
INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                  "lanczos": Image.LANCZOS, "box": Image.BOX}
# A FER2013 face (48x48 frame) relative to the face detector's box, measured by running the detector on
# 298 FERPlus test faces: the frame is 1.17 box widths wide, and its centre sits 0.09 box widths above
# the box centre (medians).
FER2013_FRAMING = {"scale": 1.17, "shift_up": 0.09}


class ContractError(ValueError):
    """An input contract (``preprocessing`` block of a model file) that cannot be used."""


@dataclass(frozen=True)
class InputContract:
    """Size, colour, normalisation, interpolation and face framing of a model's input.

    ``framing``: the square cut around a detector box ``(x0, y0, x1, y1)`` of width ``w``: side
    ``scale * w``, centre ``shift_up * w`` above the box centre.
    """

    input_size: int = 224
    color: str = "rgb"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    framing: dict = field(default_factory=lambda: dict(FER2013_FRAMING))

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool) or self.input_size < 8:
            problems.append(f"input_size must be an integer of at least 8, got {self.input_size!r}")
        if self.color not in COLORS:
            problems.append(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if (not isinstance(values, (list, tuple)) or len(values) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in values)):
                problems.append(f"{name} must be three numbers, got {values!r}")
        if not problems and min(self.std) <= 0:
            problems.append(f"std must be positive, got {list(self.std)}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        framing = self.framing
        if (not isinstance(framing, dict) or set(framing) != {"scale", "shift_up"}
                or not all(isinstance(framing[k], (int, float)) and not isinstance(framing[k], bool)
                           for k in ("scale", "shift_up")) or framing["scale"] <= 0):
            problems.append(f"framing must be {{'scale': >0, 'shift_up': number}}, got {framing!r}")
        if problems:
            raise ContractError("; ".join(problems))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    # ------------------------------------------------------------------ metadata
    def to_dict(self) -> dict:
        values = asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        return values

    @classmethod
    def from_dict(cls, values) -> "InputContract":
        """Read a ``preprocessing`` block; missing keys take the defaults of files written before they existed."""
        if not isinstance(values, dict):
            raise ContractError(f"preprocessing must be a mapping, got {type(values).__name__}")
        known = {"input_size", "color", "mean", "std", "interpolation", "framing"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ContractError(f"unknown preprocessing keys: {', '.join(unknown)}")
        return cls(**values)

    # ------------------------------------------------------------------ pixels
    def pixels(self, image: Image.Image) -> torch.Tensor:
        """A face crop (PIL, any mode and size) -> ``(3, S, S)`` float pixels in [0, 1]."""
        rgb = to_rgb(image)
        if self.color == "gray":
            rgb = rgb.convert("L").convert("RGB")
        if rgb.size != (self.input_size, self.input_size):
            rgb = rgb.resize((self.input_size, self.input_size), INTERPOLATIONS[self.interpolation])
        return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` pixels in [0, 1] -> the network's input."""
        mean = torch.tensor(self.mean, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        return (pixels - mean) / std

    # ------------------------------------------------------------------ framing
    def frame(self, box) -> tuple[float, float, float, float]:
        """A face detector box ``(x0, y0, x1, y1)`` -> the square ``(x0, y0, x1, y1)`` to cut, in the same pixels."""
        x0, y0, x1, y1 = (float(v) for v in box)
        width = x1 - x0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - self.framing["shift_up"] * width
        half = self.framing["scale"] * width / 2
        return cx - half, cy - half, cx + half, cy + half

    def cut(self, photo: Image.Image, square) -> torch.Tensor:
        """The framed square of a photo -> ``(3, S, S)`` pixels (outside the photo: black)."""
        x0, y0, x1, y1 = (round(v) for v in square)
        return self.pixels(to_rgb(photo).crop((x0, y0, x1, y1)))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB, scaling 16-bit and float grey images by their range instead of clipping."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if image.mode != "F" and low >= 0 and high <= 255:
            low, high = 0.0, 255.0  # an 8-bit image stored in a wider mode
        elif image.mode != "F":
            low, high = 0.0, 65535.0 if high <= 65535 else high
        elif low >= 0 and high <= 1:
            low, high = 0.0, 1.0
        scaled = np.nan_to_num((values - low) / max(high - low, 1e-12)).clip(0, 1)
        return Image.fromarray((scaled * 255).round().astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def stack_pixels(images, contract: InputContract) -> torch.Tensor:
    """Face crops (PIL) -> ``(B, 3, S, S)`` pixels in [0, 1]."""
    return torch.stack([contract.pixels(image) for image in images])
