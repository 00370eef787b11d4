"""Dataset readers: FERPlus and any folder-per-class tree (Occlu-FER, a user's own data)."""

from __future__ import annotations

import csv
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset
from orsanet.labels import DATASET_ORDERS, LabelError, canonical_name

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


def ferplus_target(votes: list[int], mode: str):
    """Target from the 10 FERPlus votes, or None when the image is dropped under ``mode``.

    majority: drop single votes, keep the top class if it holds more than half of what remains and
    is an emotion; argmax: plain argmax of the 8 emotion votes (ties and unknown/NF tops dropped);
    probability: the 8 emotion votes (single votes dropped) as a distribution.
    """
    if mode == "argmax":
        top = max(votes)
        if top == 0 or votes.index(top) >= 8 or votes.count(top) > 1:
            return None
        return votes.index(top)
    cleaned = [v if v > 1 else 0 for v in votes]
    if mode == "majority":
        total, top = sum(cleaned), max(cleaned)
        if total == 0 or top * 2 <= total or cleaned.index(top) >= 8:
            return None
        return cleaned.index(top)
    if mode == "probability":
        emotions = cleaned[:8]
        total = sum(emotions)
        return [v / total for v in emotions] if total else None
    raise DatasetError(f"FERPlus label mode must be majority, argmax or probability, got {mode!r}")


def open_ferplus(root: Path, split: str, label_mode: str = "majority", transform=None) -> FaceDataset:
    if split not in FERPLUS_SPLITS:
        raise DatasetError(f"{root}: FERPlus split must be one of {', '.join(FERPLUS_SPLITS)}, got {split!r}")
    folder = root / FERPLUS_SPLITS[split]
    label_file = folder / "label.csv"
    if not label_file.is_file():
        raise DatasetError(f"{label_file}: missing FERPlus label file")
    samples = []
    with open(label_file, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if len(row) < 12:
                raise DatasetError(f"{label_file}:{number}: expected name, box and 10 votes, got {len(row)} fields")
            try:
                votes = [int(v) for v in row[2:12]]
            except ValueError:
                raise DatasetError(f"{label_file}:{number}: votes are not integers") from None
            target = ferplus_target(votes, label_mode)
            if target is not None:
                samples.append((folder / row[0].strip(), target))
    missing = [str(path) for path, _ in samples[:50] if not path.exists()]
    if missing:
        raise DatasetError(f"{missing[0]}: image listed in {label_file} but absent")
    return FaceDataset(samples, list(DATASET_ORDERS["ferplus"]), transform, name=f"ferplus/{split}")


def open_folder_tree(root: Path, split: str | None, transform=None, label_names: list[str] | None = None) -> FaceDataset:
    """``root/split/<class name>/*.png``; class folders are expression names (aliases accepted)."""
    folder = root / split if split else root
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir())
    if not class_dirs:
        raise DatasetError(f"{folder}: no class folders")
    try:
        names = [canonical_name(d.name) for d in class_dirs]
    except LabelError as error:
        raise DatasetError(f"{folder}: {error}") from None
    order = label_names or [name for name in DATASET_ORDERS["ferplus"] if name in names]
    samples = []
    for directory, name in zip(class_dirs, names):
        if name not in order:
            raise DatasetError(f"{directory}: class {name!r} is not in the given labels {order}")
        samples += [(path, order.index(name)) for path in sorted(directory.rglob("*"))
                    if path.suffix.lower() in IMAGE_SUFFIXES]
    return FaceDataset(samples, order, transform, name=str(folder))
