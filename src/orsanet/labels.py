"""The label registry: canonical expression names, each dataset's native order, mapping by name."""

from __future__ import annotations

CANONICAL = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")

# Native class order of each dataset (index i = the dataset's class i, after any 1-based shift).
DATASET_ORDERS: dict[str, tuple[str, ...]] = {
    "ferplus": ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
    "fer2013": ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
    "rafdb": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),  # files say 1..7
    "affectnet8": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"),
    "affectnet7": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"),
}

ALIASES = {
    "happy": "happiness", "joy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
    "surprize": "surprise", "fearful": "fear", "afraid": "fear", "scared": "fear", "disgusted": "disgust",
    "contemptuous": "contempt", "calm": "neutral", "natural": "neutral",
}


class LabelError(ValueError):
    """An expression name or label list that cannot be understood."""


def canonical_name(name: str) -> str:
    """``"Happy"`` -> ``"happiness"``; raises LabelError for names that are not expressions."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    key = ALIASES.get(key, key)
    if key not in CANONICAL:
        raise LabelError(f"unknown expression label {name!r} (known: {', '.join(CANONICAL)})")
    return key


def dataset_label_names(dataset: str) -> list[str]:
    """Native label order of a dataset, e.g. ``dataset_label_names("rafdb")``."""
    try:
        return list(DATASET_ORDERS[dataset.lower().replace("-", "")])
    except KeyError:
        raise LabelError(f"unknown dataset label order {dataset!r} (known: {', '.join(DATASET_ORDERS)})") from None


def parse_label_spec(spec: str) -> list[str]:
    """A dataset name (its native order) or comma-separated expression names."""
    if "," not in spec and spec.lower().replace("-", "") in DATASET_ORDERS:
        return dataset_label_names(spec)
    names = [canonical_name(part) for part in spec.split(",") if part.strip()]
    if len(set(names)) != len(names):
        raise LabelError(f"label list {spec!r} names a class twice")
    return names


def label_mapping(source: list[str], target: list[str]) -> tuple[dict[int, int], list[str]]:
    """Index map ``source class -> target class`` by name, and the source names with no target."""
    target_index = {name: i for i, name in enumerate(target)}
    mapping = {i: target_index[name] for i, name in enumerate(source) if name in target_index}
    return mapping, [name for name in source if name not in target_index]
