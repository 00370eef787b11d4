"""Classification metrics against small cases worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from orsanet.engine.metrics import (ClassificationMetrics, accuracy, confusion_matrix, expected_calibration_error,
                                    macro_f1, mean_class_accuracy, per_class_metrics)

NAMES = ["neutral", "happiness", "anger"]


def one_hot_logits(predictions: list[int], num_classes: int = 3, margin: float = 10.0) -> torch.Tensor:
    logits = torch.zeros(len(predictions), num_classes)
    logits[torch.arange(len(predictions)), torch.tensor(predictions)] = margin
    return logits


def test_perfect_predictions():
    targets = [0, 1, 2, 2, 1]
    assert accuracy(targets, targets) == 1.0
    assert mean_class_accuracy(targets, targets) == 1.0
    assert macro_f1(targets, targets) == 1.0
    np.testing.assert_array_equal(confusion_matrix(targets, targets, 3), [[1, 0, 0], [0, 2, 0], [0, 0, 2]])


def test_all_wrong():
    targets, predictions = [0, 1, 2, 0], [1, 2, 0, 2]
    assert accuracy(targets, predictions) == 0.0
    assert mean_class_accuracy(targets, predictions) == 0.0
    assert macro_f1(targets, predictions) == 0.0
    scores = per_class_metrics(targets, predictions, 3)
    np.testing.assert_array_equal(scores["precision"], [0, 0, 0])
    np.testing.assert_array_equal(scores["support"], [2, 1, 1])


def test_imbalanced_case_by_hand():
    # 6 of class 0, 2 of class 1, 2 of class 2.
    targets = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
    predictions = [0, 0, 0, 0, 0, 1, 1, 0, 2, 0]
    matrix = confusion_matrix(targets, predictions, 3)
    np.testing.assert_array_equal(matrix, [[5, 1, 0], [1, 1, 0], [1, 0, 1]])
    assert accuracy(targets, predictions) == pytest.approx(7 / 10)
    # recall: 5/6, 1/2, 1/2
    assert mean_class_accuracy(targets, predictions) == pytest.approx((5 / 6 + 1 / 2 + 1 / 2) / 3)
    scores = per_class_metrics(targets, predictions, 3)
    np.testing.assert_allclose(scores["precision"], [5 / 7, 1 / 2, 1.0])
    np.testing.assert_allclose(scores["recall"], [5 / 6, 1 / 2, 1 / 2])
    f1 = [2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), 0.5, 2 * 1.0 * 0.5 / 1.5]
    np.testing.assert_allclose(scores["f1"], f1)
    assert macro_f1(targets, predictions) == pytest.approx(sum(f1) / 3)


def test_missing_class_has_no_division_by_zero():
    # Class 2 never occurs and is never predicted; class 1 is never predicted.
    targets, predictions = [0, 0, 1], [0, 0, 0]
    scores = per_class_metrics(targets, predictions, 3)
    np.testing.assert_allclose(scores["precision"], [2 / 3, 0.0, 0.0])
    np.testing.assert_allclose(scores["recall"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(scores["support"], [2, 1, 0])
    assert all(np.isfinite(scores[key]).all() for key in ("precision", "recall", "f1"))
    # Mean class accuracy over the classes in the targets (0 and 1) only.
    assert mean_class_accuracy(targets, predictions, 3) == pytest.approx(0.5)
    # Macro-F1 over classes seen in targets or predictions (0 and 1): F1_0 = 0.8, F1_1 = 0.
    assert macro_f1(targets, predictions, 3) == pytest.approx(0.4)


def test_predicting_an_absent_class_costs_macro_f1():
    targets, predictions = [0, 0], [0, 2]
    # class 0: P=1, R=1/2, F1=2/3; class 2: P=0 (no support), F1=0 -> mean over {0, 2}
    assert macro_f1(targets, predictions, 3) == pytest.approx((2 / 3 + 0.0) / 2)
    assert mean_class_accuracy(targets, predictions, 3) == pytest.approx(0.5)


def test_expected_calibration_error_constructed():
    # Bin (0.8, 0.8667]: confidences 0.8 + eps, 4 samples, 2 correct -> |0.5 - 0.81| * 4/6.
    # Bin (0.6, 0.6667]: confidence 0.65, 2 samples, both correct -> |1.0 - 0.65| * 2/6.
    probabilities = np.array([[0.81, 0.19], [0.81, 0.19], [0.81, 0.19], [0.81, 0.19],
                              [0.65, 0.35], [0.35, 0.65]])
    targets = np.array([0, 0, 1, 1, 0, 1])
    expected = 4 / 6 * abs(0.5 - 0.81) + 2 / 6 * abs(1.0 - 0.65)
    assert expected_calibration_error(probabilities, targets) == pytest.approx(expected)


def test_expected_calibration_error_perfectly_calibrated_and_bin_edges():
    # 1/3 of samples right at confidence 1/3 (a bin edge), all right at confidence 1.0.
    probabilities = np.array([[1 / 3, 1 / 3, 1 / 3]] * 3 + [[1.0, 0.0, 0.0]] * 2)
    targets = np.array([0, 1, 2, 0, 0])
    assert expected_calibration_error(probabilities, targets) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0


def test_report_keys_types_and_values():
    metrics = ClassificationMetrics(NAMES)
    targets = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    metrics.update(one_hot_logits([0, 0, 0, 0, 0, 1, 1, 0, 2, 0]), targets)
    report = metrics.report()
    assert set(report) == {"accuracy", "mean_class_accuracy", "macro_f1", "ece", "num_images", "per_class",
                           "confusion_matrix", "label_names"}
    json.dumps(report)  # JSON-ready
    assert report["num_images"] == 10 and report["label_names"] == NAMES
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["confusion_matrix"] == [[5, 1, 0], [1, 1, 0], [1, 0, 1]]
    assert report["per_class"]["anger"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                            "support": 2}
    for key in ("accuracy", "mean_class_accuracy", "macro_f1", "ece"):
        assert type(report[key]) is float and 0.0 <= report[key] <= 1.0
    # Confidence ~1 everywhere with 70% accuracy -> ECE ~0.3.
    assert report["ece"] == pytest.approx(0.3, abs=1e-3)


def test_probabilities_and_logits_give_the_same_report():
    logits = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(1))
    from_logits, from_probabilities = ClassificationMetrics(NAMES), ClassificationMetrics(NAMES)
    from_logits.update(logits, targets)
    from_probabilities.update(logits.softmax(1), targets)
    assert _close(from_logits.report(), from_probabilities.report())
    explicit = ClassificationMetrics(NAMES)
    explicit.update(logits.softmax(1).numpy(), targets.numpy(), kind="probabilities")
    assert _close(explicit.report(), from_logits.report())


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return math.isclose(a, b, abs_tol=1e-6)
    return a == b


def test_accumulation_over_batches_equals_one_shot():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(37, 3, generator=generator)
    targets = torch.randint(0, 3, (37,), generator=generator)
    once = ClassificationMetrics(NAMES)
    once.update(logits, targets)
    batched = ClassificationMetrics(NAMES)
    for start in range(0, 37, 8):
        batched.update(logits[start:start + 8], targets[start:start + 8])
    assert len(batched) == 37
    assert _close(batched.report(), once.report())
    np.testing.assert_array_equal(batched.confusion_matrix(), once.confusion_matrix())
    batched.reset()
    assert len(batched) == 0 and batched.report()["num_images"] == 0


def test_per_condition_grouping():
    metrics = ClassificationMetrics(NAMES)
    metrics.update(one_hot_logits([0, 1, 2]), [0, 1, 1], conditions=["clear", "occluded", "occluded"])
    metrics.update(one_hot_logits([2, 2]), [2, 0], conditions=["clear", "occluded"])
    report = metrics.report()
    assert report["num_images"] == 5 and report["accuracy"] == pytest.approx(3 / 5)
    groups = report["per_condition"]
    assert sorted(groups) == ["clear", "occluded"]
    assert groups["clear"]["num_images"] == 2 and groups["clear"]["accuracy"] == 1.0
    assert groups["occluded"]["num_images"] == 3 and groups["occluded"]["accuracy"] == pytest.approx(1 / 3)
    assert groups["occluded"]["confusion_matrix"] == [[0, 0, 1], [0, 1, 1], [0, 0, 0]]
    assert "per_condition" not in groups["clear"] and groups["clear"]["label_names"] == NAMES
    json.dumps(report)


def test_conditions_must_be_given_for_every_batch():
    metrics = ClassificationMetrics(NAMES)
    metrics.update(one_hot_logits([0]), [0], conditions=["clear"])
    with pytest.raises(ValueError, match="conditions"):
        metrics.update(one_hot_logits([0]), [0])
    other = ClassificationMetrics(NAMES)
    other.update(one_hot_logits([0]), [0])
    with pytest.raises(ValueError, match="conditions"):
        other.update(one_hot_logits([0]), [0], conditions=["clear"])


def test_bad_inputs_are_refused():
    metrics = ClassificationMetrics(NAMES)
    with pytest.raises(ValueError, match="classes"):
        metrics.update(torch.zeros(2, 4), [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metrics.update(torch.zeros(2, 3), [0, 3])
    with pytest.raises(ValueError, match="argmax"):
        metrics.update(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unique"):
        ClassificationMetrics(["a", "a"])


def test_bfloat16_logits_are_accepted():
    metrics = ClassificationMetrics(NAMES)
    metrics.update(one_hot_logits([0, 1]).to(torch.bfloat16), torch.tensor([0, 1]))
    assert metrics.report()["accuracy"] == 1.0
