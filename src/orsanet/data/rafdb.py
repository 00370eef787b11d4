"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``, codes 1..7) with the
aligned faces in ``Image/aligned/train_00001_aligned.jpg``; splits train and test (by name prefix).

A folder-per-class copy (``root/<split>/<1..7 or name>/``) is read as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset, check_listed_images, read_text_lines
from orsanet.data.folder import open_folder
from orsanet.labels import NATIVE_CODE_OFFSET, RAFDB_LABELS

log = logging.getLogger(__name__)

RAFDB_SPLITS = ("train", "test")
LABEL_FILE_NAMES = ("list_patition_label.txt", "list_partition_label.txt")  # the first is the official spelling
CODE_OFFSET = NATIVE_CODE_OFFSET["rafdb"]


def rafdb_label_file(root: Path) -> Path | None:
    """The RAF-DB basic label list under ``root/EmoLabel``, if any."""
    for file_name in LABEL_FILE_NAMES:
        if (root / "EmoLabel" / file_name).is_file():
            return root / "EmoLabel" / file_name
    return None


def rafdb_image_path(root: Path, name: str, aligned: bool = True) -> Path:
    """``train_00001.jpg`` -> ``root/Image/aligned/train_00001_aligned.jpg`` (or the original)."""
    if not aligned:
        return root / "Image" / "original" / name
    stem, _, suffix = name.rpartition(".")
    return root / "Image" / "aligned" / f"{stem}_aligned.{suffix}"


def open_rafdb(root: str | Path, split: str, transform: Callable | None = None, *, aligned: bool = True) -> FaceDataset:
    """RAF-DB basic ``train`` or ``test``; ``aligned=False`` reads ``Image/original`` instead."""
    root = Path(root)
    split = split.lower()
    if split not in RAFDB_SPLITS:
        raise DatasetError(f"{root}: RAF-DB split must be one of {', '.join(RAFDB_SPLITS)}, got {split!r} "
                           "(carve a validation split from train with stratified_split)")
    label_file = rafdb_label_file(root)
    if label_file is None:
        if (root / split).is_dir():  # folder-per-class copy
            return open_folder(root, split, transform, native_order=RAFDB_LABELS, code_offset=CODE_OFFSET,
                               name=f"rafdb/{split}")
        raise DatasetError(f"{root / 'EmoLabel' / LABEL_FILE_NAMES[0]}: missing RAF-DB label file")

    samples, names = [], []
    for number, line in enumerate(read_text_lines(label_file, "RAF-DB label file"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or "." not in fields[0]:
            raise DatasetError(f"{label_file}:{number}: malformed line: expected 'image_name.jpg label', got {line!r}")
        name, code = fields
        if not code.isdigit() or not 0 <= int(code) - CODE_OFFSET < len(RAFDB_LABELS):
            raise DatasetError(f"{label_file}:{number}: unknown label {code!r} (known: {CODE_OFFSET}.."
                               f"{CODE_OFFSET + len(RAFDB_LABELS) - 1})")
        if not name.startswith(f"{split}_"):
            continue
        samples.append((rafdb_image_path(root, name, aligned), int(code) - CODE_OFFSET))
        names.append(name)
    if not samples:
        raise DatasetError(f"{label_file}: no {split}_* images listed")
    check_listed_images([path for path, _ in samples], label_file)
    return FaceDataset(samples, RAFDB_LABELS, transform, names=names, name=f"rafdb/{split}", code_offset=CODE_OFFSET)
