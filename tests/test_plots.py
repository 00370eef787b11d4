"""The figures are written as real PNG files, atomically, and tolerate sparse input."""

from __future__ import annotations

from pathlib import Path

import pytest

from orsanet.plots import plot_confusion_matrix, plot_occlusion_curve, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 1024
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, normalize):
    matrix = [[5, 1, 0], [1, 1, 0], [0, 0, 0]]  # last row without samples
    path = plot_confusion_matrix(matrix, ["neutral", "happiness", "anger"], tmp_path / "cm.png",
                                 normalize=normalize, title="test")
    assert path == tmp_path / "cm.png"
    assert_png(path)


def test_confusion_matrix_shape_must_match_labels(tmp_path):
    with pytest.raises(ValueError, match="label_names"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()


def test_training_curves_png_and_missing_keys(tmp_path):
    rows = [{"epoch": 1, "train_loss": 1.2, "train_accuracy": 0.4, "valid_loss": 1.1, "valid_accuracy": 0.45,
             "lr": 1e-3},
            {"epoch": 2, "train_loss": 0.9, "train_accuracy": 0.6, "lr": 5e-4},  # no validation this epoch
            {"epoch": 3, "train_loss": 0.7, "valid_loss": None, "valid_accuracy": 0.7,
             "valid_mean_class_accuracy": 0.65}]
    assert_png(plot_training_curves(rows, tmp_path / "curves.png"))
    assert_png(plot_training_curves([{"train_loss": 1.0}, {"train_loss": 0.5}], tmp_path / "no_epoch.png"))
    assert_png(plot_training_curves([], tmp_path / "empty.png"))


def test_occlusion_curve_png(tmp_path):
    results = {"orsanet": [(0.5, 0.71), (0.0, 0.89), (0.25, 0.82)], "baseline": [(0.0, 0.86), (0.5, 0.55)]}
    assert_png(plot_occlusion_curve(results, tmp_path / "sub" / "occlusion.png"))


def test_rewrite_replaces_the_file(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"stale")
    plot_training_curves([{"epoch": 1, "train_loss": 1.0}], path)
    assert_png(path)
