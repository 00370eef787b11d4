"""Image preprocessing shared by training, evaluation and prediction.

Every model file records its preprocessing (input size, mean, std); these functions build the
matching torchvision pipelines. Training adds the official augmentation: random horizontal flip
and, after normalisation, RandomErasing with an area of 2-10 %.
"""

from __future__ import annotations

import torch
from torchvision import transforms as T

from orsanet.checkpoint import IMAGENET_MEAN, IMAGENET_STD


def to_model_colour(image, color: str = "rgb"):
    """PIL image -> RGB; ``color="gray"`` (models trained on grey faces) drops the colour first."""
    return image.convert("L").convert("RGB") if color == "gray" else image.convert("RGB")


def eval_transform(input_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, color: str = "rgb") -> T.Compose:
    """PIL image (any mode) -> normalised ``(3, S, S)`` tensor."""
    return T.Compose([
        T.Lambda(lambda image: to_model_colour(image, color)),
        T.Resize((input_size, input_size), antialias=True),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def tensor_transform(input_size: int) -> T.Compose:
    """PIL image -> ``(3, S, S)`` tensor in [0, 1], not normalised (batch-level augmentation follows)."""
    return T.Compose([T.Lambda(lambda image: image.convert("RGB")), T.Resize((input_size, input_size), antialias=True),
                      T.ToTensor()])


def train_transform(input_size: int = 224, flip: bool = True, erasing_p: float = 0.5,
                    erasing_scale: tuple[float, float] = (0.02, 0.1), mean=IMAGENET_MEAN, std=IMAGENET_STD) -> T.Compose:
    """The official training augmentation (flip, resize, normalise, RandomErasing)."""
    steps = [T.Lambda(lambda image: image.convert("RGB")), T.Resize((input_size, input_size), antialias=True)]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    if erasing_p > 0:
        steps.append(T.RandomErasing(p=erasing_p, scale=tuple(erasing_scale)))
    return T.Compose(steps)


def occlude_square(images: torch.Tensor, area: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's artificial occlusion: a black square of ``area`` (fraction of the image) per image.

    images ``(B, 3, H, W)`` normalised; the square is set to 0 on the normalised tensor at a uniformly
    random position, as ``RandomErasing(p=1, scale=(a, a), ratio=(1, 1), value=0)`` does.
    """
    if area <= 0:
        return images
    out = images.clone()
    _, _, height, width = images.shape
    side_h = min(height, max(1, round((area * height * width) ** 0.5)))
    side_w = min(width, side_h)
    for image in out:
        top = int(torch.randint(0, height - side_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side_w + 1, (1,), generator=generator))
        image[:, top:top + side_h, left:left + side_w] = 0
    return out
