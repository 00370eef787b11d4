"""Folder-per-class trees: ``root/<split>/<class>/**/image`` (Occlu-FER, a user's own data, and the
folder forms of FER2013, RAF-DB and AffectNet)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from orsanet.data.base import DatasetError, FaceDataset, image_files
from orsanet.labels import CANONICAL, canonical_or_none

log = logging.getLogger(__name__)


def _class_folders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _default_order(folder: Path, split: str | None) -> list[str]:
    """Canonical order of the expressions named by the class folders of this split and its siblings.

    Looking at the sibling splits too keeps class indices equal across train/ and test/ even when
    one split lacks a class.
    """
    found = set()
    splits = [d for d in _class_folders(folder.parent)] if split else [folder]
    for split_folder in splits:
        names = [canonical_or_none(d.name) for d in _class_folders(split_folder)]
        if split_folder == folder or (names and None not in names):
            found.update(name for name in names if name is not None)
    return [name for name in CANONICAL if name in found]


def open_folder(root: str | Path, split: str | None = None, transform: Callable | None = None, *,
                label_names: Sequence[str] | None = None, native_order: Sequence[str] | None = None,
                code_offset: int = 0, drop_codes: Sequence[int] = (), drop_labels: Sequence[str] = (),
                name: str | None = None) -> FaceDataset:
    """Images of ``root/split`` (or ``root``) with one sub-folder per class.

    Class folders are expression names (aliases accepted: ``happy``, ``Angry``...) unless the caller
    passes ``label_names`` (its own classes, in its order; folders must be among them). Numbered
    folders need ``native_order`` (the dataset's classes by code; ``code_offset`` is the first
    code). Folders with a code in ``drop_codes`` or a name in ``drop_labels`` are left out. The
    class order is ``label_names``, else ``native_order``, else the canonical order of the
    expressions found in this split and its sibling splits.
    """
    root = Path(root)
    folder = root / split if split else root
    name = name or str(folder)
    if not folder.is_dir():
        available = ", ".join(d.name for d in _class_folders(root)) if root.is_dir() else "none"
        raise DatasetError(f"{folder}: no such split folder (folders in {root}: {available})")
    class_dirs = _class_folders(folder)
    if not class_dirs:
        raise DatasetError(f"{folder}: no class folders")

    if label_names is not None:
        order = [canonical_or_none(label) or label.strip() for label in label_names]
        if len(set(order)) != len(order):
            raise DatasetError(f"{folder}: label_names {list(label_names)} name a class twice")
    elif native_order is not None:
        order = list(native_order)
    else:
        order = _default_order(folder, split)

    samples, names, excluded = [], [], {}
    for class_dir in class_dirs:
        label = class_dir.name
        numbered = label.isdigit() and native_order is not None and label_names is None
        class_name = None if numbered else canonical_or_none(label) or label.strip()
        if (numbered and int(label) in drop_codes) or class_name in drop_labels:
            files = image_files(class_dir)
            excluded.update({f.relative_to(folder).as_posix(): f"class {label} left out" for f in files})
            log.info("%s: class folder %s left out (%d images)", name, label, len(files))
            continue
        if numbered:
            index = int(label) - code_offset
            if not 0 <= index < len(native_order):
                raise DatasetError(f"{class_dir}: unknown label code {label} (known: {code_offset}.."
                                   f"{code_offset + len(native_order) - 1})")
        else:
            if class_name not in order:
                if label_names is not None:
                    raise DatasetError(f"{class_dir}: class folder {label!r} is not among the given label_names "
                                       f"{order}")
                raise DatasetError(f"{class_dir}: unknown label {label!r}: not an expression name (known: "
                                   f"{', '.join(CANONICAL)}); pass label_names to use your own classes")
            index = order.index(class_name)
        files = image_files(class_dir)
        if not files:
            log.warning("%s: class folder %s has no images", name, class_dir)
        samples += [(path, index) for path in files]
        names += [path.relative_to(folder).as_posix() for path in files]
    native_codes = native_order is not None and label_names is None
    return FaceDataset(samples, order, transform, names=names, name=name,
                       code_offset=code_offset if native_codes else 0, excluded=excluded)
