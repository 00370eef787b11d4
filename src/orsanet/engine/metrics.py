"""Classification metrics for expression recognition, in numpy and torch only.

Two layers:

* pure functions on integer targets and predictions (``accuracy``, ``mean_class_accuracy``,
  ``macro_f1``, ``per_class_metrics``, ``confusion_matrix``) and on probabilities
  (``expected_calibration_error``);
* ``ClassificationMetrics``, which accumulates batches of scores and builds a JSON-ready report,
  optionally split by a per-sample condition string (e.g. ``"occluded"``, ``"pose>30"``).

All rates are Python floats in [0, 1] (not percent). Conventions for classes that never occur:

* a class that is never predicted has precision 0 (not undefined);
* a class that never occurs in the targets has recall 0 and is left out of the mean class accuracy;
* F1 is 0 whenever precision + recall is 0;
* ``macro_f1`` averages over the classes that occur in the targets or in the predictions, so a class
  absent from both (e.g. "contempt" on a 7-class test set) does not drag the mean down, while
  predicting a class that is not in the data still costs F1.

An empty input gives 0.0 for every rate rather than NaN, so reports stay valid JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

ECE_BINS = 15
_PROBABILITY_TOLERANCE = 1e-4

ArrayLike = torch.Tensor | np.ndarray | Sequence


# ------------------------------------------------------------------ conversions
def _as_numpy(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        return (values.float() if values.dtype == torch.bfloat16 else values).numpy()
    return np.asarray(values)


def _as_labels(values: ArrayLike, what: str) -> np.ndarray:
    """A 1-D int64 array of class indices."""
    array = _as_numpy(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, got shape {tuple(array.shape)} "
                         "(soft targets: take .argmax(1) first)")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"{what} must hold integer class indices")
    return array.astype(np.int64, copy=False)


def _check_pair(targets: ArrayLike, predictions: ArrayLike,
                num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    targets, predictions = _as_labels(targets, "targets"), _as_labels(predictions, "predictions")
    if targets.shape != predictions.shape:
        raise ValueError(f"targets {targets.shape} and predictions {predictions.shape} differ in length")
    if num_classes is None:
        num_classes = int(max(targets.max(initial=-1), predictions.max(initial=-1))) + 1
    for name, array in (("targets", targets), ("predictions", predictions)):
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got [{array.min()}, {array.max()}]")
    return targets, predictions, num_classes


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator`` with 0 where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


# ------------------------------------------------------------------ pure functions
def confusion_matrix(targets: ArrayLike, predictions: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """Counts as an int64 ``(C, C)`` array: rows are true classes, columns predicted classes.

    ``num_classes`` defaults to one more than the largest index seen.
    """
    targets, predictions, num_classes = _check_pair(targets, predictions, num_classes)
    flat = np.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _per_class_from_matrix(matrix: np.ndarray) -> dict[str, np.ndarray]:
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _ratio(true_positive, predicted)
    recall = _ratio(true_positive, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "predicted": predicted.astype(np.int64)}


def _accuracy_from_matrix(matrix: np.ndarray) -> float:
    return float(_ratio(np.trace(matrix), matrix.sum()))


def _mean_class_accuracy_from_matrix(matrix: np.ndarray) -> float:
    scores = _per_class_from_matrix(matrix)
    present = scores["support"] > 0
    return float(scores["recall"][present].mean()) if present.any() else 0.0


def _macro_f1_from_matrix(matrix: np.ndarray) -> float:
    scores = _per_class_from_matrix(matrix)
    seen = (scores["support"] > 0) | (scores["predicted"] > 0)
    return float(scores["f1"][seen].mean()) if seen.any() else 0.0


def accuracy(targets: ArrayLike, predictions: ArrayLike) -> float:
    """Fraction of predictions equal to the target (0.0 for empty input)."""
    targets, predictions, _ = _check_pair(targets, predictions, None)
    return float(np.mean(targets == predictions)) if targets.size else 0.0


def per_class_metrics(targets: ArrayLike, predictions: ArrayLike,
                      num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float arrays) and ``support`` (int array), length C.

    A never-predicted class has precision 0; a class without support has recall 0.
    """
    scores = _per_class_from_matrix(confusion_matrix(targets, predictions, num_classes))
    return {key: scores[key] for key in ("precision", "recall", "f1", "support")}


def mean_class_accuracy(targets: ArrayLike, predictions: ArrayLike, num_classes: int | None = None) -> float:
    """Mean of per-class recall over the classes present in ``targets``."""
    return _mean_class_accuracy_from_matrix(confusion_matrix(targets, predictions, num_classes))


def macro_f1(targets: ArrayLike, predictions: ArrayLike, num_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes that occur in ``targets`` or ``predictions``."""
    return _macro_f1_from_matrix(confusion_matrix(targets, predictions, num_classes))


def _ece_from_confidence(confidence: np.ndarray, correct: np.ndarray, num_bins: int = ECE_BINS) -> float:
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # Bins are (lo, hi]; a confidence of exactly 0 falls in the first bin.
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    confidence_sum = np.bincount(bins, weights=confidence, minlength=num_bins)
    correct_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=num_bins)
    gaps = np.abs(correct_sum - confidence_sum)  # = |B| * |acc(B) - conf(B)|
    return float(gaps.sum() / confidence.size)


def expected_calibration_error(probabilities: ArrayLike, targets: ArrayLike, num_bins: int = ECE_BINS) -> float:
    """Top-1 expected calibration error with ``num_bins`` equal-width confidence bins.

    ``ECE = sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|``, where sample i falls in the
    bin holding its top-1 probability. ``probabilities`` is ``(N, C)`` and rows should sum to 1.
    """
    probabilities = _as_numpy(probabilities).astype(np.float64, copy=False)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be (N, C), got shape {tuple(probabilities.shape)}")
    targets = _as_labels(targets, "targets")
    if len(targets) != len(probabilities):
        raise ValueError(f"{len(probabilities)} probability rows but {len(targets)} targets")
    if probabilities.shape[0] == 0:
        return 0.0
    correct = probabilities.argmax(axis=1) == targets
    return _ece_from_confidence(probabilities.max(axis=1), correct, num_bins)


def _to_probabilities(scores: ArrayLike, kind: str) -> torch.Tensor:
    """``(N, C)`` float64 probabilities from logits or probabilities (``kind``: auto/logits/probabilities)."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().to(torch.float64)
    else:
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    if scores.dim() != 2:
        raise ValueError(f"scores must be (N, C), got shape {tuple(scores.shape)}")
    if kind == "auto":
        kind = "probabilities" if _looks_like_probabilities(scores) else "logits"
    if kind == "logits":
        return torch.softmax(scores, dim=1)
    if kind == "probabilities":
        return scores
    raise ValueError(f"kind must be 'auto', 'logits' or 'probabilities', got {kind!r}")


def _looks_like_probabilities(scores: torch.Tensor) -> bool:
    if scores.numel() == 0:
        return False
    in_range = bool(((scores >= 0) & (scores <= 1)).all())
    sums_to_one = bool(((scores.sum(dim=1) - 1).abs() <= _PROBABILITY_TOLERANCE).all())
    return in_range and sums_to_one


def _summary(targets: np.ndarray, predictions: np.ndarray, confidence: np.ndarray,
             label_names: Sequence[str]) -> dict:
    """The JSON-ready report for one group of samples."""
    matrix = confusion_matrix(targets, predictions, len(label_names))
    scores = _per_class_from_matrix(matrix)
    per_class = {name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                        "f1": float(scores["f1"][i]), "support": int(scores["support"][i])}
                 for i, name in enumerate(label_names)}
    return {"accuracy": _accuracy_from_matrix(matrix),
            "mean_class_accuracy": _mean_class_accuracy_from_matrix(matrix),
            "macro_f1": _macro_f1_from_matrix(matrix),
            "ece": _ece_from_confidence(confidence, targets == predictions),
            "num_images": int(len(targets)),
            "per_class": per_class,
            "confusion_matrix": matrix.tolist(),
            "label_names": list(label_names)}


# ------------------------------------------------------------------ accumulator
class ClassificationMetrics:
    """Accumulate predictions batch by batch, then ``report()``.

        >>> metrics = ClassificationMetrics(["neutral", "happiness", "anger"])
        >>> metrics.update(logits, targets)                       # (N, C) scores, (N,) class indices
        >>> metrics.update(logits, targets, conditions=["occluded"] * len(targets))  # optional groups
        >>> metrics.report()["accuracy"]

    Only the top-1 prediction and its probability are kept per sample, so memory is O(N).
    If any batch carries ``conditions``, every batch must.
    """

    def __init__(self, label_names: Sequence[str]):
        label_names = [str(name) for name in label_names]
        if not label_names:
            raise ValueError("label_names must not be empty")
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names must be unique, got {label_names}")
        self.label_names = label_names
        self.reset()

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def reset(self) -> None:
        """Forget every sample seen so far."""
        self._targets: list[np.ndarray] = []
        self._predictions: list[np.ndarray] = []
        self._confidence: list[np.ndarray] = []
        self._conditions: list[str] | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def update(self, scores: ArrayLike, targets: ArrayLike, conditions: Sequence[str] | None = None,
               *, kind: str = "auto") -> None:
        """Add a batch.

        ``scores``: ``(N, C)`` logits or probabilities. With ``kind="auto"`` rows that are all in
        [0, 1] and sum to 1 are taken as probabilities, anything else as logits; pass
        ``kind="logits"`` or ``kind="probabilities"`` to be explicit (it only matters for ECE).
        ``targets``: ``(N,)`` integer class indices. ``conditions``: ``N`` strings, optional.
        """
        probabilities = _to_probabilities(scores, kind)
        targets = _as_labels(targets, "targets")
        if probabilities.shape[1] != self.num_classes:
            raise ValueError(f"scores have {probabilities.shape[1]} classes but there are {self.num_classes} "
                             f"label names")
        if len(targets) != probabilities.shape[0]:
            raise ValueError(f"{probabilities.shape[0]} score rows but {len(targets)} targets")
        if targets.size and (targets.min() < 0 or targets.max() >= self.num_classes):
            raise ValueError(f"targets must lie in [0, {self.num_classes}), got [{targets.min()}, {targets.max()}]")
        self._add_conditions(conditions, len(targets))
        confidence, predictions = probabilities.max(dim=1)
        self._targets.append(targets.copy())
        self._predictions.append(predictions.numpy().astype(np.int64))
        self._confidence.append(confidence.numpy())
        self._count += len(targets)

    def _add_conditions(self, conditions: Sequence[str] | None, count: int) -> None:
        if conditions is None:
            if self._conditions is not None and count:
                raise ValueError("earlier batches had conditions; this one must have them too")
            return
        if isinstance(conditions, str):
            raise ValueError("conditions must be a sequence of strings, one per sample, not a single string")
        conditions = [str(condition) for condition in conditions]
        if len(conditions) != count:
            raise ValueError(f"{len(conditions)} conditions for {count} samples")
        if self._conditions is None:
            if self._count:
                raise ValueError("earlier batches had no conditions; cannot add them now")
            self._conditions = []
        self._conditions.extend(conditions)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._targets:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.float64)
        return np.concatenate(self._targets), np.concatenate(self._predictions), np.concatenate(self._confidence)

    def confusion_matrix(self) -> np.ndarray:
        """Counts so far, ``(C, C)``, rows = true class, columns = predicted class."""
        targets, predictions, _ = self._arrays()
        return confusion_matrix(targets, predictions, self.num_classes)

    def report(self) -> dict:
        """JSON-ready summary of everything seen (see the module docstring for conventions).

        Keys: ``accuracy``, ``mean_class_accuracy``, ``macro_f1``, ``ece``, ``num_images``,
        ``per_class`` ({name: {precision, recall, f1, support}}), ``confusion_matrix`` and
        ``label_names``; plus ``per_condition`` ({condition: the same keys}) when conditions were given.
        """
        targets, predictions, confidence = self._arrays()
        if not targets.size:
            log.warning("classification report on zero samples: every rate is reported as 0.0")
        report = _summary(targets, predictions, confidence, self.label_names)
        if self._conditions is not None:
            conditions = np.asarray(self._conditions, dtype=object)
            report["per_condition"] = {}
            for name in sorted(set(self._conditions)):
                mask = conditions == name
                report["per_condition"][name] = _summary(targets[mask], predictions[mask], confidence[mask],
                                                         self.label_names)
        return report
