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


def occlude_square(pixels: torch.Tensor, area: float, fill, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's artificial occlusion: one square of ``area`` (fraction of the image) per image.

    pixels ``(B, 3, H, W)`` in [0, 1]; ``fill``: the square's colour (three values; the contract's mean
    is the paper's 0 on the normalised tensor, as ``RandomErasing(p=1, scale=(a, a), ratio=(1, 1), value=0)``),
    at a uniformly random position drawn from ``generator``.
    """
    if area <= 0:
        return pixels
    out = pixels.clone()
    _, _, height, width = pixels.shape
    side_h = min(height, max(1, round((area * height * width) ** 0.5)))
    side_w = min(width, side_h)
    colour = torch.tensor(list(fill), dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    for image in out:
        top = int(torch.randint(0, height - side_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side_w + 1, (1,), generator=generator))
        image[:, top:top + side_h, left:left + side_w] = colour
    return out
