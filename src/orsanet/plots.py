"""Figures for ``orsanet eval`` and ``orsanet train``: confusion matrix, training curves, occlusion curve.

matplotlib is imported inside each function (so ``import orsanet`` stays fast) and figures are drawn
on an Agg canvas without pyplot, so no global figure state or display is involved. Every file is
written atomically: to a temporary file next to the target, then moved into place.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from orsanet.fileio import atomic_path

log = logging.getLogger(__name__)

_DPI = 120


def _new_figure(width: float, height: float):
    """A pyplot-free figure attached to the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` to ``path`` atomically; the format comes from the suffix (PNG if there is none)."""
    path = Path(path)
    image_format = path.suffix[1:].lower() or "png"
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=image_format)
    log.debug("wrote %s", path)
    return path


def _number(value) -> float | None:
    """``value`` as a finite float, or None when it is missing or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plot_confusion_matrix(matrix: Sequence[Sequence[float]] | np.ndarray, label_names: Sequence[str],
                          path: str | os.PathLike, normalize: bool = True,
                          title: str = "Confusion matrix") -> Path:
    """Heat map of a ``(C, C)`` count matrix (rows = true, columns = predicted); returns ``path``.

    With ``normalize`` the colours and the main number of each cell are row fractions (recall on the
    diagonal) and the raw count is annotated underneath; rows without samples stay at 0.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    names = [str(name) for name in label_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(names):
        raise ValueError(f"matrix must be ({len(names)}, {len(names)}) to match label_names, "
                         f"got shape {counts.shape}")
    size = len(names)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals != 0)
        vmax = 1.0
    else:
        values = counts
        vmax = max(float(counts.max(initial=0.0)), 1.0)

    side = max(4.0, 0.75 * size + 2.0)
    figure = _new_figure(side + 1.0, side)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04,
                    label="fraction of the true class" if normalize else "images")
    axes.set(xticks=range(size), yticks=range(size), xlabel="predicted", ylabel="true", title=title)
    axes.set_xticklabels(names, rotation=45, ha="right")
    axes.set_yticklabels(names)

    font_size = 9 if size <= 8 else 7
    for row in range(size):
        for column in range(size):
            count = int(round(counts[row, column]))
            text = f"{values[row, column]:.2f}\n({count})" if normalize else f"{count}"
            colour = "white" if values[row, column] > 0.5 * vmax else "black"
            axes.text(column, row, text, ha="center", va="center", color=colour, fontsize=font_size)
    return _save(figure, path)


def _series(rows: Sequence[Mapping], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) for the rows that hold a numeric ``key``; epoch defaults to the row's position."""
    epochs, values = [], []
    for position, row in enumerate(rows, start=1):
        value = _number(row.get(key))
        if value is None:
            continue
        epoch = _number(row.get("epoch"))
        epochs.append(position if epoch is None else epoch)
        values.append(value)
    return epochs, values


def _plot_panel(axes, rows: Sequence[Mapping], keys: Iterable[tuple[str, str, str]], ylabel: str) -> list[float]:
    """Draw each (key, legend label, line style) present in ``rows``; return every plotted value."""
    plotted = []
    for key, label, style in keys:
        epochs, values = _series(rows, key)
        if values:
            axes.plot(epochs, values, style, marker="o", markersize=3, label=label)
            plotted.extend(values)
    axes.set(xlabel="epoch", ylabel=ylabel)
    axes.grid(True, alpha=0.3)
    if plotted:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="grey")
    return plotted


def plot_training_curves(history_rows: Sequence[Mapping], path: str | os.PathLike,
                         title: str = "Training curves") -> Path:
    """Loss and accuracy per epoch for train and valid (plus the learning rate when logged).

    ``history_rows`` are dicts like ``{'epoch', 'train_loss', 'train_accuracy', 'valid_loss',
    'valid_accuracy', 'lr'}``; missing or non-numeric entries are skipped, and ``valid_mean_class_accuracy``
    is drawn too when present. Returns ``path``.
    """
    rows = list(history_rows)
    has_lr = any(_number(row.get("lr")) is not None for row in rows)
    figure = _new_figure(12.0 if has_lr else 9.0, 3.8)
    panels = figure.subplots(1, 3 if has_lr else 2, squeeze=False)[0]

    _plot_panel(panels[0], rows, [("train_loss", "train", "-"), ("valid_loss", "valid", "-")], "loss")
    panels[0].set_title("loss")
    accuracies = _plot_panel(panels[1], rows, [("train_accuracy", "train", "-"), ("valid_accuracy", "valid", "-"),
                                               ("valid_mean_class_accuracy", "valid (mean class)", "--")],
                             "accuracy")
    panels[1].set_title("accuracy")
    if accuracies and 0.0 <= min(accuracies) and max(accuracies) <= 1.0:
        panels[1].set_ylim(0.0, 1.0)
    if has_lr:
        learning_rates = _plot_panel(panels[2], rows, [("lr", "lr", "-")], "learning rate")
        panels[2].set_title("learning rate")
        if min(learning_rates) > 0:
            panels[2].set_yscale("log")
    figure.suptitle(title)
    return _save(figure, path)


def plot_occlusion_curve(results: Mapping[str, Iterable[tuple[float, float]]], path: str | os.PathLike,
                         title: str = "Accuracy under occlusion") -> Path:
    """Accuracy against occluded area fraction, one line per model; returns ``path``.

    ``results`` maps a model name to ``(area_fraction, accuracy)`` pairs, both in [0, 1]; points are
    sorted by area before drawing.
    """
    figure = _new_figure(6.0, 4.5)
    axes = figure.add_subplot()
    plotted = False
    for name, points in results.items():
        pairs = sorted((float(area), float(value)) for area, value in points)
        if not pairs:
            log.warning("occlusion curve: no points for %s", name)
            continue
        areas, values = zip(*pairs)
        axes.plot(areas, values, marker="o", label=str(name))
        plotted = True
    axes.set(xlabel="occluded area (fraction of the image)", ylabel="accuracy", title=title)
    axes.set_ylim(0.0, 1.0)
    axes.grid(True, alpha=0.3)
    if plotted:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="grey")
    return _save(figure, path)
