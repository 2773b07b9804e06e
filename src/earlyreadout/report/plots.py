"""Training curves for the HTML report: per-group validation accuracy over epochs, seeds averaged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from earlyreadout.explain.figures import png_bytes


def series(logs: Sequence[Sequence[dict[str, Any]]], field: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epochs, {name: array of shape (seeds, epochs)}) of the numbers under `field` in log.jsonl rows
    (e.g. `measures`), cut to the shortest run; a missing value is NaN."""
    logs = [list(log) for log in logs if log]
    if not logs:
        return np.zeros(0), {}
    length = min(len(log) for log in logs)
    epochs = np.array([row["epoch"] + 1 for row in logs[0][:length]])
    names = list(dict.fromkeys(name for row in logs[0][:length] for name in row.get(field, {})))
    curves = {}
    for name in names:
        values = [[np.nan if row.get(field, {}).get(name) is None else row[field][name] for row in log[:length]]
                  for log in logs]
        curves[name] = np.array(values, dtype=float)
    return epochs, curves


def group_curves(logs: Sequence[Sequence[dict[str, Any]]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epochs, {group: array of shape (seeds, epochs)}) of per-group validation accuracy, read from each
    row's `val.groups` (the list of {name, n, accuracy, ...} that metrics.json holds too)."""
    named = [[{"epoch": row["epoch"], "groups": {g["name"]: g["accuracy"] for g in row["val"].get("groups", [])}}
              for row in log] for log in logs]
    return series(named, "groups")


def lines_figure(title: str, epochs: np.ndarray, curves: dict[str, np.ndarray], n_seeds: int, ylabel: str,
                 worst: bool) -> Figure:
    """Curves over epochs (mean over seeds, band = min..max), with their minimum when `worst`; whole-epoch
    ticks, and the legend to the right of the axes, off the data."""
    fig = Figure(figsize=(4.6, 3.0))
    ax = fig.subplots()
    for name, values in curves.items():
        (line,) = ax.plot(epochs, np.nanmean(values, 0), marker="o" if len(epochs) < 12 else None, ms=3,
                          lw=1.6, label=name)
        if len(values) > 1:
            ax.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.15)
    if worst:
        lowest = np.nanmin(np.stack([v for v in curves.values()]), 0)
        ax.plot(epochs, np.nanmean(lowest, 0), color="black", ls="--", lw=1.2, label="worst group")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 ticks
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" ({n_seeds} seeds)" if n_seeds > 1 else ""), fontsize=10)
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the lines
    fig.tight_layout()
    return fig


def lines_png(title: str, epochs: np.ndarray, curves: dict[str, np.ndarray], n_seeds: int, ylabel: str,
              worst: bool) -> bytes | None:
    """PNG of `lines_figure`; None without epochs or curves."""
    if len(epochs) == 0 or not curves:
        return None
    return png_bytes(lines_figure(title, epochs, curves, n_seeds, ylabel, worst), dpi=96)


def curves_png(title: str, logs: Sequence[Sequence[dict[str, Any]]]) -> bytes | None:
    """PNG of per-group val accuracy (mean over seeds, band = min..max) and the worst group; None if no log."""
    epochs, curves = group_curves(logs)
    return lines_png(title, epochs, curves, len(logs), "val accuracy", worst=True)


MEASURES = {
    "counterfactual_reliance": "share of val predictions that flip when only the attribute is swapped",
    "probe_spurious": "a fresh probe of the readout layer decoding the spurious attribute",
    "probe_core": "a fresh probe of the readout layer decoding the label",
    "forget_update_ratio_median": "median size of a forget step's early-layer update over the main step's",
    "forget_update_ratio_p90": "its 90th percentile",
}


def measures_png(title: str, logs: Sequence[Sequence[dict[str, Any]]]) -> bytes | None:
    """PNG of a method's per-epoch measures (reliance, probe and readout accuracies, forget ratios); None if
    the runs logged none."""
    epochs, curves = series(logs, "measures")
    return lines_png(title, epochs, curves, len(logs), "rate / accuracy", worst=False)


def measures_caption(logs: Sequence[Sequence[dict[str, Any]]]) -> str:
    """What the measures plot shows: each logged measure's name with its meaning where it is a known one."""
    names = series(logs, "measures")[1]
    return "; ".join(f"{name}: {MEASURES[name]}" if name in MEASURES else name for name in names)
