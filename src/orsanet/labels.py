"""The label registry: canonical expression names, each dataset's native order, mapping by name.

Every dataset reader reports its classes as canonical names (``CANONICAL``) in the dataset's own
class order, so models and datasets are matched by name, never by index.
"""

from __future__ import annotations

from collections.abc import Sequence

CANONICAL = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")

# Native class order of each dataset: position i is the dataset's class i. Where the files use
# 1-based codes (RAF-DB), code c is position c - NATIVE_CODE_OFFSET[dataset].
FERPLUS_LABELS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FER2013_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
RAFDB_LABELS = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
AFFECTNET8_LABELS = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
AFFECTNET7_LABELS = AFFECTNET8_LABELS[:7]  # the 7-class protocol leaves contempt out

DATASET_ORDERS: dict[str, tuple[str, ...]] = {
    "ferplus": FERPLUS_LABELS,
    "fer2013": FER2013_LABELS,
    "rafdb": RAFDB_LABELS,
    "affectnet8": AFFECTNET8_LABELS,
    "affectnet7": AFFECTNET7_LABELS,
}
NATIVE_CODE_OFFSET: dict[str, int] = {"ferplus": 0, "fer2013": 0, "rafdb": 1, "affectnet8": 0, "affectnet7": 0}

# Spellings met in folder names and label files (compared lower-case, without spaces, '-' and '_');
# the two-letter codes are those of JAFFE and KDEF file names.
ALIASES: dict[str, str] = {
    "neutrality": "neutral", "neu": "neutral", "ne": "neutral",
    "happy": "happiness", "happyness": "happiness", "joy": "happiness", "joyful": "happiness", "hap": "happiness",
    "ha": "happiness",
    "surprised": "surprise", "surprize": "surprise", "suprise": "surprise", "sur": "surprise", "su": "surprise",
    "sad": "sadness", "sa": "sadness",
    "angry": "anger", "ang": "anger", "an": "anger",
    "disgusted": "disgust", "disgusting": "disgust", "dis": "disgust", "di": "disgust",
    "fearful": "fear", "afraid": "fear", "scared": "fear", "fea": "fear", "fe": "fear",
    "af": "fear", "contemptuous": "contempt",
}


class LabelError(ValueError):
    """An expression name or label list that cannot be understood."""


def _key(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in " -_")


def canonical_or_none(name: str) -> str | None:
    """The canonical name for ``name`` (aliases accepted), or None when it is not an expression."""
    key = _key(name)
    key = ALIASES.get(key, key)
    return key if key in CANONICAL else None


def canonical_name(name: str) -> str:
    """``"Happy"`` -> ``"happiness"``; raises LabelError for names that are not expressions."""
    canonical = canonical_or_none(name)
    if canonical is None:
        raise LabelError(f"unknown expression label {name!r} (known: {', '.join(CANONICAL)})")
    return canonical


def dataset_label_names(dataset: str) -> list[str]:
    """Native label order of a dataset, e.g. ``dataset_label_names("rafdb")``."""
    try:
        return list(DATASET_ORDERS[_key(dataset)])
    except KeyError:
        raise LabelError(f"unknown dataset label order {dataset!r} (known: {', '.join(DATASET_ORDERS)})") from None


def parse_label_spec(spec: str) -> list[str]:
    """A dataset name (its native order) or comma-separated expression names."""
    if "," not in spec and _key(spec) in DATASET_ORDERS:
        return dataset_label_names(spec)
    names = [canonical_name(part) for part in spec.split(",") if part.strip()]
    if len(set(names)) != len(names):
        raise LabelError(f"label list {spec!r} names a class twice")
    return names


def label_mapping(source: Sequence[str], target: Sequence[str]) -> tuple[dict[int, int], list[str]]:
    """Map class indices of ``source`` to those of ``target`` by name.

    Returns ``({source index: target index}, [source names absent from target])``. Names are
    compared after alias resolution (``"happy"`` matches ``"happiness"``); names that are not
    expressions (a user's own classes) are compared as written.
    """
    def normal(name: str) -> str:
        return canonical_or_none(name) or name.strip()

    target_index: dict[str, int] = {}
    for i, name in enumerate(target):
        if normal(name) in target_index:
            raise LabelError(f"label list {list(target)} names {name!r} twice")
        target_index[normal(name)] = i
    mapping = {i: target_index[normal(name)] for i, name in enumerate(source) if normal(name) in target_index}
    return mapping, [name for name in source if normal(name) not in target_index]
