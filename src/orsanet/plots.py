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


def plot_robustness(squares: Mapping[str, Mapping[str, Iterable[tuple[float, float]]]],
                    bars: Mapping[str, Mapping[str, float]], clean: Mapping[str, float], path: str | os.PathLike,
                    title: str = "Accuracy under occlusion") -> Path:
    """Two panels for ``orsanet robustness``; returns ``path``.

    Left: accuracy against the occluded area, one colour per model: ``squares[model][kind]`` holds
    ``(area_fraction, accuracy)`` pairs per square kind (the first kind solid, the others dashed),
    each line starting at the model's ``clean`` accuracy at 0 %. Right: grouped bars of
    ``bars[model][setting]`` accuracy (settings in first-seen order), the clean accuracy as a dashed
    line in the model's colour.
    """
    from matplotlib.lines import Line2D

    models = list(dict.fromkeys([*clean, *squares, *bars]))
    settings = list(dict.fromkeys(s for model in models for s in bars.get(model, {})))
    kinds = list(dict.fromkeys(k for model in models for k in squares.get(model, {})))
    colours = [f"C{i % 10}" for i in range(len(models))]
    figure = _new_figure(5.0 + max(4.0, 0.22 * len(settings) * max(len(models), 1) + 1.0), 4.8)
    grid = figure.add_gridspec(1, 2, width_ratios=[1.0, max(1.2, 0.05 * len(settings) * max(len(models), 1))])
    left, right = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])

    styles, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D"]
    for model, colour in zip(models, colours):
        start = _number(clean.get(model))
        for k, kind in enumerate(kinds):
            pairs = sorted((float(a), float(v)) for a, v in squares.get(model, {}).get(kind, []))
            if start is not None:
                pairs = [(0.0, start)] + pairs
            if len(pairs) < 1:
                continue
            areas, values = zip(*pairs)
            left.plot([100 * a for a in areas], values, styles[k % 4], marker=markers[k % 4], color=colour,
                      markersize=4)
    handles = [Line2D([], [], color=c, marker="o", label=str(m)) for m, c in zip(models, colours)]
    handles += [Line2D([], [], color="grey", linestyle=styles[k % 4], marker=markers[k % 4], label=kind)
                for k, kind in enumerate(kinds) if len(kinds) > 1 or kind != "square_mean"]
    left.set(xlabel="occluded area (% of the image)", ylabel="accuracy", title="random square")
    left.set_ylim(0.0, 1.0)
    left.grid(True, alpha=0.3)
    if kinds:
        left.legend(handles=handles, fontsize=8)
    else:
        left.text(0.5, 0.5, "no square settings", ha="center", va="center", transform=left.transAxes, color="grey")

    if settings:
        width = 0.8 / max(len(models), 1)
        positions = np.arange(len(settings))
        for m, (model, colour) in enumerate(zip(models, colours)):
            values = [_number(bars.get(model, {}).get(s)) for s in settings]
            offsets = positions - 0.4 + width * (m + 0.5)
            right.bar(offsets, [v if v is not None else 0.0 for v in values], width, color=colour, label=str(model))
            if _number(clean.get(model)) is not None:
                right.axhline(float(clean[model]), color=colour, linestyle="--", linewidth=1, alpha=0.8)
        right.set_xticks(positions)
        right.set_xticklabels(settings, rotation=45, ha="right")
        right.set_xlim(-0.6, len(settings) - 0.4)
        right.legend(fontsize=8, ncols=min(len(models), 3), loc="upper right")
    else:
        right.text(0.5, 0.5, "no region or realistic settings", ha="center", va="center",
                   transform=right.transAxes, color="grey")
    right.set(ylabel="accuracy", title="regions and realistic occluders (dashed: clean)")
    right.set_ylim(0.0, 1.0)
    right.grid(True, axis="y", alpha=0.3)
    figure.suptitle(title)
    return _save(figure, path)


def plot_region_sensitivity(maps: Mapping[str, tuple[Sequence[str], Sequence[str], Sequence[Sequence[float]]]],
                            path: str | os.PathLike,
                            title: str = "Drop in per-class recall when a region is hidden") -> Path:
    """One heat map per model of the recall drop in points (rows: regions, columns: classes), annotated
    with the numbers; red = hiding the region costs the class recall, blue = hiding it helps. ``maps[model]``
    is ``(regions, classes, matrix)``; NaN cells are left grey. Returns ``path``."""
    from matplotlib.colors import TwoSlopeNorm

    items = list(maps.items())
    if not items:
        raise ValueError("no sensitivity maps to draw")
    values = [np.asarray(matrix, dtype=np.float64) for _, (_, _, matrix) in items]
    for (name, (rows, columns, _)), matrix in zip(items, values):
        if matrix.shape != (len(rows), len(columns)):
            raise ValueError(f"{name}: matrix shape {matrix.shape} does not match {len(rows)} rows x "
                             f"{len(columns)} columns")
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    limit = max(10.0, float(np.abs(finite).max(initial=0.0)))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    widths = [max(2.5, 0.62 * len(columns) + 1.2) for _, (_, columns, _) in items]
    height = max(3.5, 0.45 * max(len(rows) for _, (rows, _, _) in items) + 2.0)
    figure = _new_figure(sum(widths) + 1.6, height)
    grid = figure.add_gridspec(1, len(items) + 1, width_ratios=[*widths, 0.25])
    image = None
    for k, ((name, (rows, columns, _)), matrix) in enumerate(zip(items, values)):
        axes = figure.add_subplot(grid[k])
        masked = np.ma.masked_invalid(matrix)
        cmap = _diverging_cmap()
        image = axes.imshow(masked, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        axes.set_xticks(range(len(columns)))
        axes.set_xticklabels([str(c) for c in columns], rotation=45, ha="right", fontsize=8)
        axes.set_yticks(range(len(rows)))
        axes.set_yticklabels([str(r) for r in rows] if k == 0 else [""] * len(rows))
        axes.set_title(str(name), fontsize=10)
        for r in range(len(rows)):
            for c in range(len(columns)):
                value = matrix[r, c]
                text = "–" if not np.isfinite(value) else f"{int(round(value))}"
                strong = np.isfinite(value) and abs(value) > 0.6 * limit
                axes.text(c, r, text, ha="center", va="center", fontsize=7, color="white" if strong else "black")
    colourbar = figure.add_subplot(grid[-1])
    figure.colorbar(image, cax=colourbar, label="recall drop (points; >0 = worse)")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def _diverging_cmap():
    """RdBu reversed (red = worse), with missing cells in light grey."""
    from matplotlib import colormaps

    return colormaps["RdBu_r"].with_extremes(bad="#dddddd")
