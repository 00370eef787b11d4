"""AffectNet, 8 classes or 7 (contempt left out).

CSV form: ``training.csv`` / ``validation.csv`` (in ``root`` or ``root/Manually_Annotated_file_lists``)
with columns ``subDirectory_filePath`` (or ``pth``) and ``expression`` (0 Neutral .. 7 Contempt;
8 None, 9 Uncertain, 10 Non-face are left out); images under ``Manually_Annotated_Images/``.
Folder form: ``root/<split>/<0..7 or class name>/``. Splits: ``train`` and ``val``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset, check_listed_images
from orsanet.data.folder import open_folder
from orsanet.labels import AFFECTNET7_LABELS, AFFECTNET8_LABELS

log = logging.getLogger(__name__)

SPLIT_CSV = {"train": "training.csv", "val": "validation.csv"}
SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "test": "val"}
SPLIT_FOLDERS = {"train": ("train", "training", "train_set"), "val": ("val", "valid", "validation", "val_set")}
PATH_COLUMNS = ("subdirectory_filepath", "pth", "path")
LABEL_COLUMNS = ("expression", "label")
NON_EMOTION_CODES = {8: "none", 9: "uncertain", 10: "non-face"}
IMAGE_FOLDERS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")


def _labels(num_classes: int) -> tuple[str, ...]:
    if num_classes not in (7, 8):
        raise DatasetError(f"AffectNet has 7 or 8 classes, got {num_classes}")
    return AFFECTNET8_LABELS if num_classes == 8 else AFFECTNET7_LABELS


def _split_key(root: Path, split: str) -> str:
    key = SPLIT_ALIASES.get(split.lower(), split.lower())
    if key not in SPLIT_CSV:
        raise DatasetError(f"{root}: AffectNet split must be train or val, got {split!r}")
    return key


def find_affectnet_csv(root: Path, split: str) -> Path | None:
    """The annotation CSV of ``split``: ``root`` itself if it is a file, else the official name."""
    if root.is_file():
        return root
    key = _split_key(root, split)
    for folder in (root, root / "Manually_Annotated_file_lists"):
        if (folder / SPLIT_CSV[key]).is_file():
            return folder / SPLIT_CSV[key]
    return None


def _image_root(csv_path: Path, first: str, image_root: Path | None) -> Path:
    if image_root is not None:
        return image_root
    bases = [csv_path.parent, csv_path.parent.parent]
    candidates = [base / folder for base in bases for folder in IMAGE_FOLDERS] + bases
    for candidate in candidates:
        if (candidate / first).is_file():
            return candidate
    return candidates[0]


def open_affectnet_csv(csv_path: Path, num_classes: int = 8, transform: Callable | None = None,
                       image_root: Path | None = None) -> FaceDataset:
    """One AffectNet annotation CSV; ``image_root`` defaults to the folder holding its first image."""
    labels = _labels(num_classes)
    rows: list[tuple[str, int]] = []
    excluded: dict[str, str] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip().lower() for column in next(reader, [])]
        path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
        label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
        if path_col is None or label_col is None:
            raise DatasetError(f"{csv_path}: malformed header: needs an image path column ({' or '.join(PATH_COLUMNS)})"
                               f" and an expression column ({' or '.join(LABEL_COLUMNS)}), found: {', '.join(header)}")
        for line, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) <= max(path_col, label_col):
                raise DatasetError(f"{csv_path}:{line}: malformed line: {len(row)} fields, expected {len(header)}")
            name, code = row[path_col].strip().replace("\\", "/"), row[label_col].strip()
            if not code.isdigit() or int(code) > max(NON_EMOTION_CODES):
                raise DatasetError(f"{csv_path}:{line}: unknown label {code!r} (known: 0..{max(NON_EMOTION_CODES)})")
            if int(code) >= len(labels):
                excluded[name] = NON_EMOTION_CODES.get(int(code), "contempt (7-class protocol)")
                continue
            rows.append((name, int(code)))
    if not rows:
        raise DatasetError(f"{csv_path}: no images with an expression label")
    folder = _image_root(csv_path, rows[0][0], image_root)
    samples = [(folder / name, code) for name, code in rows]
    check_listed_images([path for path, _ in samples], csv_path)
    log.info("%s: %d images kept, %d left out (no emotion label%s)", csv_path, len(samples), len(excluded),
             " or contempt" if num_classes == 7 else "")
    return FaceDataset(samples, labels, transform, names=[name for name, _ in rows],
                       name=f"affectnet{num_classes}/{csv_path.stem}", excluded=excluded)


def open_affectnet(root: str | Path, split: str, num_classes: int = 8, transform: Callable | None = None,
                   *, image_root: str | Path | None = None) -> FaceDataset:
    """AffectNet ``train`` or ``val`` from the annotation CSVs or a folder-per-class tree."""
    root = Path(root)
    labels = _labels(num_classes)
    csv_path = find_affectnet_csv(root, split)
    if csv_path is not None:
        return open_affectnet_csv(csv_path, num_classes, transform, Path(image_root) if image_root else None)
    key = _split_key(root, split)
    folder = next((name for name in SPLIT_FOLDERS[key] if (root / name).is_dir()), None)
    if folder is None:
        raise DatasetError(f"{root}: missing AffectNet label file {SPLIT_CSV[key]} and no {key}/ class folders")
    return open_folder(root, folder, transform, native_order=labels, drop_codes=range(len(labels), 11),
                       drop_labels=AFFECTNET8_LABELS[len(labels):], name=f"affectnet{num_classes}/{folder}")
