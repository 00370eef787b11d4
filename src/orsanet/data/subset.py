"""Subset lists: restrict a dataset to the images a text file names, with a condition per image.

Format, one image per line, whitespace separated: ``name [label [condition]]``; ``#`` starts a
comment, ``-`` stands for "no label". ``name`` is matched against each sample's name in its label
file, its path relative to the split folder, or its file name (when that is unique). ``label`` is
a class name or a native label code of the dataset (RAF-DB 1..7, FER2013 0..6...). Lines without
a condition get the list file's stem as condition (``occlusion_list.txt`` -> ``occlusion_list``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset, hard_label, read_text_lines
from orsanet.labels import canonical_or_none

log = logging.getLogger(__name__)

LABEL_SOURCES = ("dataset", "list")


@dataclass(frozen=True)
class SubsetEntry:
    """One line of a subset list."""

    name: str
    label: str | None
    condition: str
    line: int


def read_subset_list(path: str | Path) -> list[SubsetEntry]:
    """The entries of a subset list file; DatasetError naming the file and line when malformed."""
    path = Path(path)
    entries = []
    for number, line in enumerate(read_text_lines(path, "subset list"), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 3:
            raise DatasetError(f"{path}:{number}: malformed line: expected 'name [label [condition]]', "
                               f"got {len(fields)} fields")
        name = fields[0].replace("\\", "/").removeprefix("./")
        label = fields[1] if len(fields) > 1 and fields[1] != "-" else None
        condition = fields[2] if len(fields) > 2 else path.stem
        entries.append(SubsetEntry(name, label, condition, number))
    if not entries:
        raise DatasetError(f"{path}: the subset list names no images")
    return entries


def _name_index(dataset: FaceDataset) -> tuple[dict[str, int], dict[str, list[int]]]:
    """(full name -> sample, file name -> samples) for matching list entries."""
    full: dict[str, int] = {}
    short: dict[str, list[int]] = {}
    for i, (name, (source, _)) in enumerate(zip(dataset.names, dataset.samples)):
        full.setdefault(name, i)
        for file_name in {name.rsplit("/", 1)[-1], Path(source).name}:
            short.setdefault(file_name, []).append(i)
    return full, short


def _parse_label(dataset: FaceDataset, entry: SubsetEntry, path: Path) -> int:
    text = entry.label
    if text.lstrip("-").isdigit():
        index = int(text) - dataset.code_offset
        if 0 <= index < len(dataset.label_names):
            return index
    else:
        name = canonical_or_none(text) or text
        if name in dataset.label_names:
            return dataset.label_names.index(name)
    raise DatasetError(f"{path}:{entry.line}: unknown label {text!r} for {dataset.name} "
                       f"(classes: {', '.join(dataset.label_names)}; codes from {dataset.code_offset})")


def apply_subset(dataset: FaceDataset, lists: str | Path | Sequence[str | Path], *,
                 label_source: str = "dataset") -> FaceDataset:
    """The samples of ``dataset`` named by the subset list(s), in list order, with their conditions.

    With several lists the entries are concatenated (an image in two lists appears twice, once
    per condition). Listed labels are checked against the dataset's (disagreements are logged);
    ``label_source="list"`` makes the list's labels the targets instead.
    """
    if label_source not in LABEL_SOURCES:
        raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {label_source!r}")
    paths = [Path(lists)] if isinstance(lists, (str, Path)) else [Path(p) for p in lists]
    full, short = _name_index(dataset)
    indices, conditions, relabelled = [], [], {}
    for path in paths:
        missing, disagreements, seen = [], [], set()
        for entry in read_subset_list(path):
            index = full.get(entry.name)
            if index is None:
                matches = short.get(entry.name.rsplit("/", 1)[-1], [])
                if len(set(matches)) > 1:
                    raise DatasetError(f"{path}:{entry.line}: {entry.name!r} matches {len(set(matches))} images "
                                       f"of {dataset.name}; give its path relative to the split folder")
                index = matches[0] if matches else None
            if index is None:
                missing.append(entry.name)
                continue
            if index in seen:
                log.warning("%s:%d: %s is listed twice; the repeat is ignored", path, entry.line, entry.name)
                continue
            seen.add(index)
            if entry.label is not None:
                listed = _parse_label(dataset, entry, path)
                if listed != hard_label(dataset.samples[index][1]):
                    disagreements.append(entry.name)
                    if label_source == "list":
                        if isinstance(dataset.samples[index][1], tuple):
                            raise DatasetError(f"{path}:{entry.line}: list labels cannot replace soft targets")
                        relabelled[len(indices)] = listed
            indices.append(index)
            conditions.append(entry.condition)
        if missing:
            left_out = sum(name in dataset.excluded or name.rsplit("/", 1)[-1] in dataset.excluded for name in missing)
            note = f"; {left_out} of them left out by the label protocol" if left_out else ""
            raise DatasetError(f"{path}: {len(missing)} listed image(s) not in {dataset.name}: "
                               f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}{note}")
        if disagreements:
            log.warning("%s: %d listed label(s) differ from %s's (%s%s); using the %s's", path, len(disagreements),
                        dataset.name, ", ".join(disagreements[:3]), ", ..." if len(disagreements) > 3 else "",
                        label_source)
    subset = dataset.select(indices, conditions)
    for position, label in relabelled.items():
        subset.samples[position] = (subset.samples[position][0], label)
    subset.name = f"{dataset.name}[{', '.join(p.stem for p in paths)}]"
    log.info("%s: %d images; per condition: %s", subset.name, len(subset), subset.condition_counts())
    return subset
