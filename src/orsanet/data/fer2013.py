"""FER2013 with its original labels: the challenge's ``fer2013.csv`` or a folder-per-class copy.

CSV: columns ``emotion`` (0 Angry .. 6 Neutral), ``pixels`` (48*48 space-separated grey values)
and ``Usage`` (Training / PublicTest / PrivateTest = splits train / valid / test). Samples are
named ``fer2013.csv/<row>``, the 0-based data row (the row order of FERPlus's fer2013new.csv).
Folder form: ``root/<split>/<class name>/*.png`` as in the common train/ and test/ copies.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from orsanet.data.base import DatasetError, FaceDataset
from orsanet.data.folder import open_folder
from orsanet.labels import FER2013_LABELS

log = logging.getLogger(__name__)

FER2013_USAGE = {"train": "Training", "valid": "PublicTest", "test": "PrivateTest"}
SPLIT_ALIASES = {"training": "train", "val": "valid", "validation": "valid", "publictest": "valid",
                 "privatetest": "test"}
IMAGE_SIDE = 48


class PixelTable:
    """Loader for in-memory 48x48 faces: ``table(key) -> RGB image`` (picklable for DataLoader workers)."""

    def __init__(self, keys: list[str], pixels: np.ndarray) -> None:
        self.row_of = {key: i for i, key in enumerate(keys)}
        self.pixels = pixels

    def __call__(self, key: str) -> Image.Image:
        return Image.fromarray(self.pixels[self.row_of[key]]).convert("RGB")


def _parse_pixels(text: str) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy warns (or raises) on a non-number
        try:
            values = np.fromstring(text, dtype=np.int32, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    if values.size != IMAGE_SIDE * IMAGE_SIDE or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)


def open_fer2013_csv(csv_path: Path, split: str, transform: Callable | None = None) -> FaceDataset:
    """One split of ``fer2013.csv``; the images are decoded into memory up front (~2 s for train)."""
    key = SPLIT_ALIASES.get(split.lower(), split.lower())
    if key not in FER2013_USAGE:
        raise DatasetError(f"{csv_path}: FER2013 split must be one of {', '.join(FER2013_USAGE)}, got {split!r}")
    usage = FER2013_USAGE[key]
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: missing FER2013 label file")
    keys, labels, images = [], [], []
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        missing = [column for column in ("emotion", "pixels", "usage") if column not in header]
        if missing:
            raise DatasetError(f"{csv_path}: malformed header: column(s) {', '.join(missing)} missing "
                               f"(found: {', '.join(header) or 'nothing'})")
        emotion_col, pixels_col, usage_col = (header.index(c) for c in ("emotion", "pixels", "usage"))
        for row_index, row in enumerate(reader):
            line = row_index + 2
            if len(row) != len(header):
                raise DatasetError(f"{csv_path}:{line}: malformed line: {len(row)} fields, expected {len(header)}")
            row_usage = row[usage_col].strip()
            if row_usage not in FER2013_USAGE.values():
                raise DatasetError(f"{csv_path}:{line}: unknown Usage {row_usage!r} "
                                   f"(known: {', '.join(FER2013_USAGE.values())})")
            if row_usage != usage:
                continue
            code = row[emotion_col].strip()
            if not code.isdigit() or int(code) >= len(FER2013_LABELS):
                raise DatasetError(f"{csv_path}:{line}: unknown label {code!r} (known: 0..{len(FER2013_LABELS) - 1})")
            pixels = _parse_pixels(row[pixels_col])
            if pixels is None:
                raise DatasetError(f"{csv_path}:{line}: malformed line: pixels must be "
                                   f"{IMAGE_SIDE * IMAGE_SIDE} integers in 0..255")
            keys.append(f"{csv_path.name}/{row_index}")
            labels.append(int(code))
            images.append(pixels)
    if not keys:
        raise DatasetError(f"{csv_path}: no {usage} rows")
    table = PixelTable(keys, np.stack(images))
    return FaceDataset(list(zip(keys, labels)), FER2013_LABELS, transform, names=keys,
                       name=f"fer2013/{usage}", loader=table)


def find_fer2013_csv(root: Path) -> Path | None:
    """``root`` itself when it is a CSV file, else ``root/fer2013.csv`` if present."""
    if root.is_file():
        return root
    candidate = root / "fer2013.csv"
    return candidate if candidate.is_file() else None


def open_fer2013(root: str | Path, split: str, transform: Callable | None = None) -> FaceDataset:
    """FER2013 from ``fer2013.csv`` (``root`` is the file or its folder) or a folder-per-class tree."""
    root = Path(root)
    csv_path = find_fer2013_csv(root)
    if csv_path is not None:
        return open_fer2013_csv(csv_path, split, transform)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such FER2013 file or folder")
    return open_folder(root, split, transform, native_order=FER2013_LABELS, name=f"fer2013/{split}")
