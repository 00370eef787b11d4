"""Stratified, seeded validation splits for datasets that ship none (RAF-DB, AffectNet, Occlu-FER)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from orsanet.data.base import DatasetError, FaceDataset


def stratified_split(labels: Sequence[int], fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(kept, held_out)`` sample indices, both sorted.

    Each class gives ``round(fraction * its size)`` of its samples to ``held_out`` (at least one,
    and never its only sample), chosen by a generator seeded with ``seed``: the same labels,
    fraction and seed always give the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    generator = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    kept, held_out = [], []
    for label in sorted(by_class):
        members = by_class[label]
        generator.shuffle(members)
        count = min(max(1, round(fraction * len(members))), len(members) - 1)
        held_out += members[:count]
        kept += members[count:]
    return sorted(kept), sorted(held_out)


def split_dataset(dataset: FaceDataset, fraction: float, seed: int = 0) -> tuple[FaceDataset, FaceDataset]:
    """``(train, validation)`` datasets carved from ``dataset`` by ``stratified_split``."""
    kept, held_out = stratified_split(dataset.hard_labels(), fraction, seed)
    if not held_out:
        raise DatasetError(f"{dataset.name}: too few images per class to carve a validation split")
    train, valid = dataset.select(kept), dataset.select(held_out)
    train.name, valid.name = f"{dataset.name}[train {1 - fraction:g}]", f"{dataset.name}[valid {fraction:g}]"
    return train, valid
