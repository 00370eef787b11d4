"""The dataset type every reader returns, with corrupt-image handling, and shared input checks."""

from __future__ import annotations

import copy
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})

# What PIL raises for a missing, truncated or corrupt file (a broken PNG raises SyntaxError).
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

Target = int | tuple[float, ...]


class DatasetError(ValueError):
    """Bad dataset input (missing label file, unknown label, listed-but-absent image), in one line."""


def hard_label(target: Target) -> int:
    """The class index of a target: itself, or the argmax of a soft target (first on ties)."""
    if isinstance(target, (tuple, list)):
        return max(range(len(target)), key=target.__getitem__)
    return int(target)


class FaceDataset(Dataset):
    """Face images with expression labels: ``dataset[i] -> (image, target)``.

    - ``samples``: ``(path or key, target)`` pairs; target is a class index, or (FERPlus
      ``probability`` mode) a tuple of class probabilities returned as a float tensor;
    - ``label_names``: canonical names in class-index order;
    - ``names``: the dataset's own name of each sample (the name in its label file, or its path
      relative to the split folder), used to match subset lists;
    - ``conditions``: optional per-sample group (e.g. occlusion type) for grouped results;
    - ``excluded``: names the reader left out on purpose (label protocol), with the reason.

    An unreadable image never stops an epoch: the sample is replaced by the next readable one of
    the same class (same condition if possible), its path is appended to ``skipped`` and a warning
    is logged. With DataLoader workers each worker keeps its own ``skipped``; call
    ``scan_images()`` first for a complete list.
    """

    def __init__(self, samples: Sequence[tuple[str | Path, Target]], label_names: Sequence[str],
                 transform: Callable | None = None, conditions: Sequence[str] | None = None, *,
                 names: Sequence[str] | None = None, name: str = "dataset", loader: Callable | None = None,
                 code_offset: int = 0, excluded: dict[str, str] | None = None) -> None:
        if not samples:
            raise DatasetError(f"{name}: no images found")
        self.samples = list(samples)
        self.label_names = list(label_names)
        self.transform = transform
        self.names = list(names) if names is not None else [Path(path).name for path, _ in self.samples]
        self.conditions = list(conditions) if conditions is not None else None
        self.name = name
        self.code_offset = code_offset  # native label code of class 0 (1 for RAF-DB files)
        self.excluded = dict(excluded or {})
        self.skipped: list[str] = []
        self._loader = loader
        self._bad: set[int] = set()
        self._replacement: dict[int, int] = {}  # unreadable sample -> the sample served instead
        if len(self.names) != len(self.samples) or (self.conditions is not None
                                                     and len(self.conditions) != len(self.samples)):
            raise ValueError(f"{name}: names/conditions must have one entry per sample")
        for _, target in self.samples:
            if not 0 <= hard_label(target) < len(self.label_names):
                raise DatasetError(f"{name}: target {target} out of range for {len(self.label_names)} classes")

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"FaceDataset({self.name!r}, {len(self)} images, {len(self.label_names)} classes)"

    def hard_labels(self) -> list[int]:
        """The class index of every sample (argmax for soft targets)."""
        return [hard_label(target) for _, target in self.samples]

    def class_counts(self) -> dict[str, int]:
        """Images per class, in class order (soft targets counted at their argmax)."""
        counts = dict.fromkeys(self.label_names, 0)
        for label in self.hard_labels():
            counts[self.label_names[label]] += 1
        return counts

    def condition_counts(self) -> dict[str, int] | None:
        """Images per condition, or None when the samples carry no conditions."""
        if self.conditions is None:
            return None
        counts: dict[str, int] = {}
        for condition in self.conditions:
            counts[condition] = counts.get(condition, 0) + 1
        return counts

    def summary(self) -> str:
        """One line: name, size and per-class counts."""
        counts = ", ".join(f"{label} {count}" for label, count in self.class_counts().items())
        return f"{self.name}: {len(self)} images ({counts})"

    def load_image(self, index: int) -> Image.Image:
        """The RGB image of sample ``index``; raises one of ``UNREADABLE`` for a bad file."""
        source = self.samples[index][0]
        if self._loader is not None:
            return self._loader(source)
        with Image.open(source) as image:
            return image.convert("RGB")

    def _substitutes(self, index: int) -> Iterator[int]:
        """``index``, then the other samples: same class and condition, same class, any; cyclic order."""
        yield index
        n, label = len(self.samples), hard_label(self.samples[index][1])
        condition = self.conditions[index] if self.conditions else None
        order = [(index + step) % n for step in range(1, n)]
        same_class = [i for i in order if hard_label(self.samples[i][1]) == label]
        if condition is not None:
            yield from (i for i in same_class if self.conditions[i] == condition)
            yield from (i for i in same_class if self.conditions[i] != condition)
        else:
            yield from same_class
        yield from (i for i in order if hard_label(self.samples[i][1]) != label)

    def _mark_unreadable(self, index: int, error: BaseException) -> None:
        self._bad.add(index)
        self.skipped.append(str(self.samples[index][0]))
        log.warning("%s: unreadable image skipped: %s (%s: %s)", self.name, self.samples[index][0],
                    type(error).__name__, str(error).splitlines()[0] if str(error) else "")

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} images")
        index %= len(self)
        remembered = [self._replacement[index]] if index in self._replacement else []
        for i in itertools.chain(remembered, self._substitutes(index)):
            if i in self._bad:
                continue
            try:
                image = self.load_image(i)
            except UNREADABLE as error:
                self._mark_unreadable(i, error)
                continue
            if i != index:
                self._replacement[index] = i
            target = self.samples[i][1]
            if isinstance(target, tuple):
                target = torch.tensor(target, dtype=torch.float32)
            return (self.transform(image) if self.transform is not None else image), target
        raise DatasetError(f"{self.name}: no readable image left ({len(self.skipped)} unreadable)")

    def select(self, indices: Iterable[int], conditions: Sequence[str] | None = None) -> FaceDataset:
        """A new dataset with the samples at ``indices`` (optionally with new conditions)."""
        indices = list(indices)
        subset = copy.copy(self)
        subset.samples = [self.samples[i] for i in indices]
        subset.names = [self.names[i] for i in indices]
        if conditions is not None:
            subset.conditions = list(conditions)
        elif self.conditions is not None:
            subset.conditions = [self.conditions[i] for i in indices]
        if subset.conditions is not None and len(subset.conditions) != len(subset.samples):
            raise ValueError(f"{self.name}: {len(subset.conditions)} conditions for {len(subset.samples)} samples")
        subset.skipped, subset._bad, subset._replacement = [], set(), {}
        if not subset.samples:
            raise DatasetError(f"{self.name}: the selection is empty")
        return subset

    def scan_images(self, drop: bool = True) -> list[str]:
        """Open every image now; record the unreadable ones in ``skipped`` and (``drop``) remove them.

        Decodes every file, so it costs about one pass over the data.
        """
        bad = []
        for i in range(len(self.samples)):
            if i in self._bad:
                continue
            try:
                self.load_image(i)
            except UNREADABLE as error:
                self._mark_unreadable(i, error)
                bad.append(i)
        bad_paths = [str(self.samples[i][0]) for i in bad]
        if drop and self._bad:
            kept, skipped = self.select(i for i in range(len(self.samples)) if i not in self._bad), self.skipped
            self.samples, self.names, self.conditions = kept.samples, kept.names, kept.conditions
            self._bad, self._replacement, self.skipped = set(), {}, skipped
        return bad_paths


def check_listed_images(paths: Sequence[Path], list_file: Path) -> None:
    """Raise DatasetError naming ``list_file`` when an image it lists is absent.

    Lists each folder once instead of testing every file, so 300k images take about a second.
    """
    listing: dict[Path, set[str]] = {}
    missing = []
    for path in paths:
        folder = path.parent
        if folder not in listing:
            try:
                listing[folder] = set(os.listdir(folder))
            except OSError:
                listing[folder] = set()
        if path.name not in listing[folder]:
            missing.append(path)
    if missing:
        raise DatasetError(f"{list_file}: image {missing[0]} is listed but absent "
                           f"({len(missing)} of {len(paths)} listed images are absent)")


def read_text_lines(path: Path, what: str) -> list[str]:
    """The lines of a label/list file, or DatasetError naming it when it is missing or not text."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing {what}")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read {what} ({type(error).__name__})") from None


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden entries skipped), sorted."""
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory, f) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)
