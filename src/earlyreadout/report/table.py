"""Plain-text results tables for the terminal (worst-group accuracy first), and what every results table
says about a method beside its metrics: the group labels it read and its training time relative to ERM."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from statistics import mean
from typing import Any

from earlyreadout.methods import METHODS
from earlyreadout.metrics import mean_std

COLUMNS = (("worst_group_accuracy", "test worst-group"), ("adjusted_accuracy", "test adjusted"),
           ("average_accuracy", "test average"), ("ece", "test ECE"))
LABEL_WORDS = {"train": "train groups", "val": "val groups", "none": "none", "unknown": "unknown (trained elsewhere)"}
LABEL_ORDER = ("none", "val groups", "train groups", "unknown (trained elsewhere)")  # how the report groups methods
SELECTION_BY_GROUPS = ("val worst_group", "val adjusted")  # selection rules that read val group labels
FEATURES = "DFR on its features"  # test worst-group of DFR (val groups) refitted on a run's features
PER_CLASS = "†"  # marks a worst-group number that is worst-class (the split has no attribute labels)


def labels_of(method: str, settings: Mapping[str, Any]) -> str:
    """The group labels `method` reads under its `settings` (missing ones at their defaults): train, val or
    none (what a run's metrics.json records as `labels_used`; runs from before it are read from the config)."""
    cls = METHODS.get(method)
    return cls.labels_used({**{k: p.default for k, p in cls.hparams.items()}, **settings})


def time_s(result: Mapping[str, Any]) -> float:
    """A run's training time: the epochs plus any refit after checkpoint selection."""
    return result["train_time_s"] + result.get("last_layer", {}).get("time_s", 0.0)


def times_vs_erm(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean training time of each method over its seeds divided by ERM's ({} when ERM is not among them)."""
    by_method: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_method[r["method"]].append(time_s(r))
    if not by_method.get("erm"):
        return {}
    erm = mean(by_method["erm"])
    return {m: mean(ts) / erm for m, ts in by_method.items()} if erm > 0 else {}


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    spread = mean_std(values)
    return f"{spread['mean']:.3f} ± {spread['std']:.3f}"


def labels_cell(result: Mapping[str, Any]) -> str:
    """The group labels a result's method read, and the val groups its checkpoint selection read where it did
    (e.g. 'none (val groups for selection)')."""
    words = LABEL_WORDS.get(result.get("labels_used"), "?")
    if result.get("selected_by") in SELECTION_BY_GROUPS and result.get("labels_used") in ("none", "train"):
        words += " (val groups for selection)"
    return words


def features_cell(results: Sequence[Mapping[str, Any]]) -> str:
    """Test worst-group accuracy of DFR on each result's features (`feature_quality`), mean ± std; '-' where a
    result has none (a refit, or no val group labels)."""
    values = [r["feature_quality"]["test_worst_group"] for r in results if r.get("feature_quality")]
    return _cell(values) if values and len(values) == len(results) else "-"


def per_class(split_metrics: Mapping[str, Any]) -> bool:
    """Whether a split's worst-group accuracy is per class (the split has no attribute labels)."""
    return split_metrics.get("groups_by") == "label"


def table(results: Sequence[dict[str, Any]]) -> str:
    """One row per method (mean ± std over seeds): test metrics of the selected checkpoints, DFR's on their
    features where any result has them, then the labels each method read (a result's `labels_used`) and, with
    ERM among them, its training time relative to ERM."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_method[r["method"]].append(r)
    relative = times_vs_erm(results)
    features = any(r.get("feature_quality") for r in results)
    header = (["method", "seeds"] + [title for _, title in COLUMNS] + ([FEATURES] if features else []) + ["labels"]
              + (["time vs ERM"] if relative else []))
    rows = [header]
    for method, rs in by_method.items():
        marks = {"worst_group_accuracy": PER_CLASS if per_class(rs[0]["test"]) else ""}
        rows.append([method, str(len(rs))] + [_cell([r["test"][k] for r in rs]) + marks.get(k, "") for k, _ in COLUMNS]
                    + ([features_cell(rs)] if features else []) + [labels_cell(rs[0])]
                    + ([f"{relative[method]:.2f}x"] if relative else []))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    dataset = results[0]["dataset"] if results else ""
    selected = results[0]["selected_by"] if results else ""
    if any(per_class(r["test"]) for r in results):
        lines.append(f"{PER_CLASS} worst-class accuracy: the test split has no attribute labels, so its groups are the "
                     "classes")
    if features:
        lines.append(f"{FEATURES}: test worst-group of DFR (val group labels) refitted on the selected model's "
                     "penultimate features, the feature quality of Kirichenko et al. 2022")
    return f"{dataset} (checkpoint selected by {selected})\n" + "\n".join(lines)


def print_table(results: Sequence[dict[str, Any]]) -> None:
    print(table(results))
