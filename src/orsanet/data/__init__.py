"""Datasets: readers, the common dataset type and splitting."""

from __future__ import annotations

import random
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset
from orsanet.data.readers import open_ferplus, open_folder_tree

KINDS = ("ferplus", "folder")


def open_dataset(kind: str, root: str | Path, split: str | None, *, label_mode: str = "majority", transform=None,
                 subset: str | None = None) -> FaceDataset:
    """One split of a dataset of ``kind`` under ``root``."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset folder")
    if subset is not None:
        raise DatasetError(f"{subset}: subset lists are not supported yet")
    if kind == "ferplus":
        return open_ferplus(root, split, label_mode, transform)
    if kind == "folder":
        return open_folder_tree(root, split, transform)
    raise DatasetError(f"{root}: unknown dataset kind {kind!r} (known: {', '.join(KINDS)})")


def stratified_split(labels: list[int], fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices; each class gives ``fraction`` of its images (at least one) to held-out."""
    generator = random.Random(seed)
    kept, held_out = [], []
    for label in sorted(set(labels)):
        members = [i for i, value in enumerate(labels) if value == label]
        generator.shuffle(members)
        count = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        held_out += members[:count]
        kept += members[count:]
    return sorted(kept), sorted(held_out)


__all__ = ["DatasetError", "FaceDataset", "KINDS", "open_dataset", "stratified_split"]
