"""Per-image training augmentation and the paper's test-time square, on contract pixels.

Every split yields the input contract's pixels (``(3, S, S)`` in [0, 1], ``InputContract.pixels``);
normalisation happens later, in ``FaceModel.inputs``, for every path alike. The official training
augmentation (random horizontal flip, RandomErasing of 2-10 % of the image) is applied here to the
pixels; the erased area is filled with the contract's mean colour, which is the 0 the official code
writes on the normalised tensor.
"""

from __future__ import annotations

import torch
from torchvision import transforms as T

from orsanet.contract import InputContract


def train_transform(contract: InputContract, flip: bool = True, erasing_p: float = 0.5,
                    erasing_scale: tuple[float, float] = (0.02, 0.1)) -> T.Compose:
    """PIL face crop -> augmented ``(3, S, S)`` pixels (the official augmentation)."""
    steps = [contract.pixels]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    if erasing_p > 0:
        steps.append(T.RandomErasing(p=erasing_p, scale=tuple(erasing_scale), value=list(contract.mean)))
    return T.Compose(steps)


def square_positions(count: int, height: int, width: int, area: float, generator: torch.Generator) -> torch.Tensor:
    """``(count, 2)`` top-left corners (row, column) of the paper's square of ``area`` on ``count`` images of
    ``height x width``, drawn image after image from ``generator`` (uniform over the valid positions)."""
    side_h, side_w = square_size(height, width, area)
    return torch.tensor([[int(torch.randint(0, height - side_h + 1, (1,), generator=generator)),
                          int(torch.randint(0, width - side_w + 1, (1,), generator=generator))] for _ in range(count)],
                        dtype=torch.long).view(count, 2)


def square_size(height: int, width: int, area: float) -> tuple[int, int]:
    """Sides of the square covering ``area`` of a ``height x width`` image (clipped to the image)."""
    side = min(height, max(1, round((area * height * width) ** 0.5)))
    return side, min(width, side)


def occlude_square(pixels: torch.Tensor, area: float, fill, generator: torch.Generator | None = None,
                   positions: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's artificial occlusion: one square of ``area`` (fraction of the image) per image.

    pixels ``(B, 3, H, W)`` in [0, 1]; ``fill``: the square's colour (three values; the contract's mean
    is the paper's 0 on the normalised tensor, as ``RandomErasing(p=1, scale=(a, a), ratio=(1, 1), value=0)``);
    ``positions (B, 2)``: the top-left corners, else drawn from ``generator`` (``square_positions``).
    """
    if area <= 0:
        return pixels
    out = pixels.clone()
    _, _, height, width = pixels.shape
    side_h, side_w = square_size(height, width, area)
    if positions is None:
        positions = square_positions(len(pixels), height, width, area, generator)
    colour = torch.tensor(list(fill), dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    for image, (top, left) in zip(out, positions.tolist()):
        image[:, top:top + side_h, left:left + side_w] = colour
    return out
