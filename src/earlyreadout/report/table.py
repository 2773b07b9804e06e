"""Plain-text results tables for the terminal (worst-group accuracy first)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from earlyreadout.metrics import mean_std

COLUMNS = (("worst_group_accuracy", "test worst-group"), ("adjusted_accuracy", "test adjusted"),
           ("average_accuracy", "test average"), ("ece", "test ECE"))


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    spread = mean_std(values)
    return f"{spread['mean']:.3f} ± {spread['std']:.3f}"


def table(results: Sequence[dict[str, Any]]) -> str:
    """One row per method (mean ± std over seeds), test metrics of the selected checkpoints."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_method[r["method"]].append(r)
    header = ["method", "seeds"] + [title for _, title in COLUMNS]
    rows = [header]
    for method, rs in by_method.items():
        rows.append([method, str(len(rs))] + [_cell([r["test"][k] for r in rs]) for k, _ in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    dataset = results[0]["dataset"] if results else ""
    selected = results[0]["selected_by"] if results else ""
    return f"{dataset} (checkpoint selected by {selected})\n" + "\n".join(lines)


def print_table(results: Sequence[dict[str, Any]]) -> None:
    print(table(results))
