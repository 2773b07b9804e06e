"""Group-robust metrics: per-group, worst-group, average, adjusted, worst-class accuracy and ECE."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.errors import UserError


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """{'mean', 'std', 'values'} over seeds: the form every claim takes (sample std; 0 for one value)."""
    values = list(values)
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def group_accuracy(pred: torch.Tensor, y: torch.Tensor, g: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy per group, count per group); an empty group's accuracy is NaN."""
    correct = (pred == y).double()
    counts = torch.bincount(g, minlength=n_groups)
    hits = torch.bincount(g, weights=correct, minlength=n_groups)
    acc = torch.where(counts > 0, hits / counts.clamp_min(1), torch.full_like(hits, float("nan")))
    return acc, counts


def worst_class_accuracy(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    acc, _ = group_accuracy(pred, y, y, n_classes)
    return float(acc.nan_to_num(float("inf")).min())


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    """ECE with `n_bins` equal-width confidence bins: sum_b (n_b / n) |accuracy_b - confidence_b|."""
    conf, pred = probs.max(1)
    correct = (pred == y).double()
    bins = torch.clamp((conf.double() * n_bins).ceil().long() - 1, 0, n_bins - 1)
    acc = torch.bincount(bins, weights=correct, minlength=n_bins)
    cs = torch.bincount(bins, weights=conf.double(), minlength=n_bins)
    return float(((acc - cs).abs()).sum() / max(len(y), 1))


def summarize(
    logits: torch.Tensor,
    y: torch.Tensor,
    g: torch.Tensor,
    group_names: Sequence[str],
    group_of: Sequence[tuple[int, int | None]],
    n_classes: int,
) -> dict[str, Any]:
    """All split metrics from logits; groups with no examples are listed with `accuracy: null`."""
    probs = logits.float().softmax(1)
    pred = probs.argmax(1)
    acc, counts = group_accuracy(pred, y, g, len(group_names))
    present = counts > 0
    groups = [
        {"name": name, "label": lab, "attribute": att, "n": int(c),
         "accuracy": None if c == 0 else float(a)}
        for name, (lab, att), c, a in zip(group_names, group_of, counts.tolist(), acc.tolist())
    ]
    return {
        "n": len(y),
        "average_accuracy": float((pred == y).double().mean()) if len(y) else float("nan"),
        "worst_group_accuracy": float(acc[present].min()) if present.any() else float("nan"),
        "adjusted_accuracy": float(acc[present].mean()) if present.any() else float("nan"),
        "worst_class_accuracy": worst_class_accuracy(pred, y, n_classes),
        "ece": expected_calibration_error(probs, y),
        "groups": groups,
    }


def overlapping_group_accuracy(logits: torch.Tensor, y: torch.Tensor, membership: torch.Tensor,
                               names: Sequence[str]) -> dict[str, Any]:
    """Accuracy on groups that may overlap (`membership[i, k]`: example i is in group k) and their minimum.

    This is how WILDS scores CivilComments: an example counts in every identity group it belongs to.
    Empty groups are listed with `accuracy: null` and left out of the worst-group minimum.
    """
    correct = (logits.argmax(1) == y).double()
    member = membership.bool().double()
    counts = member.sum(0)
    acc = torch.where(counts > 0, (member * correct[:, None]).sum(0) / counts.clamp_min(1),
                      torch.full_like(counts, float("nan")))
    present = counts > 0
    return {
        "worst_group_accuracy": float(acc[present].min()) if present.any() else float("nan"),
        "groups": [{"name": n, "n": int(c), "accuracy": None if c == 0 else float(a)}
                   for n, c, a in zip(names, counts.tolist(), acc.tolist())],
    }


METRIC_OF = {
    "worst_group": "worst_group_accuracy",
    "adjusted": "adjusted_accuracy",
    "average": "average_accuracy",
    "worst_class": "worst_class_accuracy",
}


def selection_metric(select_by: str, val: GroupedDataset) -> tuple[str, str]:
    """(criterion name, metrics key); `auto` is worst-group with group labels, else average accuracy."""
    if select_by == "auto":
        select_by = "worst_group" if val.has_attributes else "average"
    if select_by in ("worst_group", "adjusted") and not val.has_attributes:
        raise UserError(f"select_by={select_by} needs group labels on val, which {val.name} does not have; "
                        "use select_by=average or worst_class")
    return select_by, METRIC_OF[select_by]


# what a split's groups are: (label, attribute) pairs, or the classes where the split has no attribute labels
# (its worst-group accuracy is then the worst-class accuracy)
GROUPS_BY = {True: "label and attribute", False: "label"}


def evaluate_logits(logits: torch.Tensor, dataset: GroupedDataset) -> dict[str, Any]:
    """Split metrics, with `groups_by` saying what the groups are; datasets with overlapping evaluation groups
    add them under `eval_groups`."""
    result = summarize(logits, dataset.y, dataset.g, dataset.group_names,
                       [dataset.group_of(i) for i in range(dataset.n_groups)], dataset.n_classes)
    result["groups_by"] = GROUPS_BY[dataset.has_attributes]
    if dataset.eval_groups is not None:
        names, membership = dataset.eval_groups
        result["eval_groups"] = overlapping_group_accuracy(logits, dataset.y, membership, names)
    return result

