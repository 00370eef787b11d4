"""The dataset type every reader returns, with corrupt-image handling."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Bad dataset input (missing label file, unknown label, listed-but-absent image), in one line."""


class FaceDataset(Dataset):
    """Images with labels: ``dataset[i] -> (image, target)``.

    ``samples``: list of ``(path, target)`` with target an int class index (or a soft target
    vector); ``label_names``: canonical names in class-index order; ``conditions``: optional
    per-sample group names (e.g. occlusion type) for grouped results.
    An unreadable image is skipped: the next readable sample is returned instead, and the path
    is recorded in ``skipped`` (with a warning), so an epoch never crashes on one bad file.
    """

    def __init__(self, samples: list[tuple[Path, object]], label_names: list[str], transform: Callable | None = None,
                 conditions: list[str] | None = None, name: str = "dataset") -> None:
        if not samples:
            raise DatasetError(f"{name}: no images found")
        self.samples, self.label_names, self.transform = samples, list(label_names), transform
        self.conditions, self.name = conditions, name
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.samples)

    def class_counts(self) -> list[int]:
        counts = [0] * len(self.label_names)
        for _, target in self.samples:
            counts[int(torch.as_tensor(target).argmax()) if torch.as_tensor(target).dim() else int(target)] += 1
        return counts

    def load_image(self, index: int) -> Image.Image:
        with Image.open(self.samples[index][0]) as image:
            return image.convert("RGB")

    def __getitem__(self, index: int):
        for offset in range(len(self.samples)):
            i = (index + offset) % len(self.samples)
            try:
                image = self.load_image(i)
            except (OSError, UnidentifiedImageError, ValueError) as error:
                path = str(self.samples[i][0])
                if path not in self.skipped:
                    self.skipped.append(path)
                    log.warning("%s: unreadable image skipped (%s)", path, type(error).__name__)
                continue
            target = self.samples[i][1]
            target = torch.as_tensor(target, dtype=torch.float32) if isinstance(target, (list, tuple)) else target
            return (self.transform(image) if self.transform else image), target
        raise DatasetError(f"{self.name}: no readable image at all")
