"""FERPlus: the FER2013 faces with Microsoft's 10-voter labels.

Layout: ``root/FER2013{Train,Valid,Test}/label.csv`` (no header) plus the PNGs next to it; each
line is ``name, "(x, y, w, h)", 10 vote counts`` in the order neutral, happiness, surprise,
sadness, anger, disgust, fear, contempt, unknown, NF (not a face).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset, check_listed_images, read_text_lines
from orsanet.labels import FERPLUS_LABELS

log = logging.getLogger(__name__)

FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
SPLIT_ALIASES = {"training": "train", "val": "valid", "validation": "valid", "publictest": "valid",
                 "privatetest": "test", **{folder.lower(): split for split, folder in FERPLUS_SPLITS.items()}}
LABEL_MODES = ("majority", "argmax", "probability")
NUM_VOTE_COLUMNS = 10  # 8 emotions, unknown, NF
NUM_EMOTIONS = 8


def clean_votes(votes: Sequence[int]) -> list[int]:
    """Microsoft's outlier removal: a class with a single vote gets none."""
    return [0 if v == 1 else v for v in votes]


def ferplus_target(votes: Sequence[int], mode: str) -> int | tuple[float, ...] | None:
    """The target for one image's 10 votes under ``mode``, or None when the image is left out.

    - ``majority``: after ``clean_votes``, the top class must hold more than half of the remaining
      votes and be an emotion (not unknown/NF); that class is the label.
    - ``argmax``: on the raw votes, the largest count of all 10 columns must be held by exactly
      one column and that column must be an emotion; equivalently the top emotion is unique among
      the 8 emotions and has strictly more votes than unknown and than NF.
    - ``probability``: the 8 emotion votes after ``clean_votes``, normalised to sum to 1; images
      with no emotion vote left are left out.
    """
    if mode == "majority":
        cleaned = clean_votes(votes)
        total, top = sum(cleaned), max(cleaned)
        label = cleaned.index(top)
        return label if total > 0 and 2 * top > total and label < NUM_EMOTIONS else None
    if mode == "argmax":
        top = max(votes)
        label = list(votes).index(top)
        return label if top > 0 and list(votes).count(top) == 1 and label < NUM_EMOTIONS else None
    if mode == "probability":
        emotions = clean_votes(votes)[:NUM_EMOTIONS]
        total = sum(emotions)
        return tuple(v / total for v in emotions) if total > 0 else None
    raise DatasetError(f"FERPlus label mode must be one of {', '.join(LABEL_MODES)}, got {mode!r}")


def ferplus_split_folder(root: Path, split: str) -> Path:
    """``root/FER2013Train`` for ``train`` (also accepts valid/val/test and the folder names)."""
    key = SPLIT_ALIASES.get(split.lower(), split.lower())
    if key not in FERPLUS_SPLITS:
        raise DatasetError(f"{root}: FERPlus split must be one of {', '.join(FERPLUS_SPLITS)}, got {split!r}")
    return root / FERPLUS_SPLITS[key]


def read_ferplus_votes(label_file: Path) -> list[tuple[str, list[int]]]:
    """``(image name, 10 votes)`` per line of a FERPlus ``label.csv``; DatasetError on a bad line."""
    rows = []
    lines = read_text_lines(label_file, "FERPlus label file")
    for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines))), 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2 + NUM_VOTE_COLUMNS:
            raise DatasetError(f"{label_file}:{number}: malformed line: expected name, face box and "
                               f"{NUM_VOTE_COLUMNS} votes, got {len(row)} fields")
        try:
            votes = [int(v) for v in row[2:]]
        except ValueError:
            raise DatasetError(f"{label_file}:{number}: malformed line: votes must be integers") from None
        if min(votes) < 0:
            raise DatasetError(f"{label_file}:{number}: malformed line: negative vote count")
        rows.append((row[0].strip(), votes))
    return rows


def open_ferplus(root: str | Path, split: str, label_mode: str = "majority",
                 transform: Callable | None = None, vote_targets: bool = False) -> FaceDataset:
    """One FERPlus split (``train``, ``valid`` or ``test``) under ``label_mode``.

    ``vote_targets``: keep the images ``label_mode`` keeps, but give each its vote distribution
    (the ``probability`` target) instead of one class, e.g. to train on the majority protocol's
    images with soft targets.
    """
    root = Path(root)
    if label_mode not in LABEL_MODES:
        raise DatasetError(f"{root}: FERPlus label mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    folder = ferplus_split_folder(root, split)
    label_file = folder / "label.csv"
    rows = read_ferplus_votes(label_file)
    check_listed_images([folder / name for name, _ in rows], label_file)
    samples, names, excluded = [], [], {}
    for image_name, votes in rows:
        target = ferplus_target(votes, label_mode)
        if target is None:
            excluded[image_name] = f"no {label_mode} label"
        else:
            samples.append((folder / image_name, ferplus_target(votes, "probability") if vote_targets else target))
            names.append(image_name)
    log.info("%s: %d of %d images kept under the %s label mode", label_file, len(samples), len(rows), label_mode)
    return FaceDataset(samples, FERPLUS_LABELS, transform, names=names, name=f"ferplus/{folder.name}/{label_mode}",
                       excluded=excluded)
