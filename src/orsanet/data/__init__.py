"""Datasets: one reader per dataset family, subset lists, validation splits and ``open_dataset``.

>>> train = open_dataset("rafdb", "data/RAF-DB/basic", "train")          # doctest: +SKIP
>>> train.label_names, train.class_counts(), train[0]                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from orsanet.data.affectnet import find_affectnet_csv, open_affectnet
from orsanet.data.base import DatasetError, FaceDataset, hard_label
from orsanet.data.fer2013 import open_fer2013
from orsanet.data.ferplus import FERPLUS_SPLITS, LABEL_MODES, ferplus_target, open_ferplus
from orsanet.data.folder import open_folder
from orsanet.data.rafdb import open_rafdb, rafdb_label_file
from orsanet.data.split import split_dataset, stratified_split
from orsanet.data.subset import apply_subset, read_subset_list

log = logging.getLogger(__name__)

KINDS = ("ferplus", "fer2013", "rafdb", "affectnet7", "affectnet8", "folder")


def detect_kind(root: str | Path) -> str:
    """Guess the dataset kind of ``root`` from its files; ``folder`` when nothing specific is found."""
    root = Path(root)
    if root.is_file():
        with open(root, newline="", encoding="utf-8-sig") as handle:
            header = {column.strip().lower() for column in next(csv.reader(handle), [])}
        if "pixels" in header:
            return "fer2013"
        if header & {"subdirectory_filepath", "expression"}:
            return "affectnet8"
        raise DatasetError(f"{root}: cannot tell the dataset kind from its header")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset file or folder")
    if any((root / folder / "label.csv").is_file() for folder in FERPLUS_SPLITS.values()):
        return "ferplus"
    if rafdb_label_file(root) is not None:
        return "rafdb"
    if (root / "fer2013.csv").is_file():
        return "fer2013"
    if find_affectnet_csv(root, "train") or find_affectnet_csv(root, "val"):
        return "affectnet8"
    return "folder"


def open_dataset(kind: str, root: str | Path, split: str | None, *, label_mode: str = "majority",
                 transform: Callable | None = None, subset: str | Path | Sequence[str | Path] | None = None,
                 label_names: Sequence[str] | None = None, scan_images: bool = False,
                 vote_targets: bool = False) -> FaceDataset:
    """One split of a dataset.

    ``kind``: one of ``KINDS`` or ``auto``. ``label_mode``: FERPlus ``majority`` / ``argmax`` /
    ``probability``; other datasets have one label per image (``probability`` is refused).
    ``subset``: subset list file(s) restricting the split and giving per-sample conditions.
    ``label_names``: a folder tree's own classes, in order. ``scan_images``: decode every image
    now and drop the unreadable ones (they are reported in ``skipped``). ``vote_targets``
    (FERPlus): the images ``label_mode`` keeps, each with its vote distribution as a soft target.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset file or folder")
    if kind == "auto":
        kind = detect_kind(root)
        log.info("%s: detected dataset kind %s", root, kind)
    if kind not in KINDS:
        raise DatasetError(f"{root}: unknown dataset kind {kind!r} (known: {', '.join(KINDS)}, auto)")
    if label_mode not in LABEL_MODES:
        raise DatasetError(f"{root}: label mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    if kind != "ferplus" and label_mode == "probability":
        raise DatasetError(f"{root}: label mode 'probability' needs FERPlus votes; {kind} has one label per image")
    if vote_targets and kind != "ferplus":
        raise DatasetError(f"{root}: vote targets need FERPlus votes; {kind} has one label per image")
    if label_names is not None and kind != "folder":
        raise DatasetError(f"{root}: label_names applies to kind 'folder' only ({kind} has a fixed class order)")
    if split is None and kind != "folder":
        raise DatasetError(f"{root}: kind {kind} needs a split")

    if kind == "ferplus":
        dataset = open_ferplus(root, split, label_mode, transform, vote_targets)
    elif kind == "fer2013":
        dataset = open_fer2013(root, split, transform)
    elif kind == "rafdb":
        dataset = open_rafdb(root, split, transform)
    elif kind in ("affectnet7", "affectnet8"):
        dataset = open_affectnet(root, split, int(kind[-1]), transform)
    else:
        dataset = open_folder(root, split, transform, label_names=label_names)
    if subset is not None:
        dataset = apply_subset(dataset, subset)
    if scan_images:
        bad = dataset.scan_images(drop=True)
        log.info("%s: %d unreadable image(s) dropped", dataset.name, len(bad))
    log.info("%s", dataset.summary())
    return dataset


__all__ = [
    "DatasetError", "FaceDataset", "KINDS", "LABEL_MODES", "apply_subset", "detect_kind", "ferplus_target",
    "hard_label", "open_affectnet", "open_dataset", "open_fer2013", "open_ferplus", "open_folder", "open_rafdb",
    "read_subset_list", "split_dataset", "stratified_split",
]
