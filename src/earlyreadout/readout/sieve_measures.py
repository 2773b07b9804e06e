"""What a sieve's forget steps do, measured during training: their size beside the main step's, and the
readout's accuracy just before and after them on the groups the shortcut agrees with and contradicts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def update_norm(before: Sequence[torch.Tensor], after: Sequence[torch.Tensor]) -> float:
    """The L2 norm of the move from `before` to `after`, over all the tensors together."""
    return math.sqrt(sum(float((b - a).double().pow(2).sum()) for a, b in zip(before, after)))


def update_ratio(forget: float, main: float) -> float:
    """A forget step's update norm over the main step's at the same iteration (nan where the main step is 0)."""
    return forget / main if main > 0 else float("nan")


def majority_attributes(y: torch.Tensor, a: torch.Tensor, n_classes: int, n_attributes: int) -> torch.Tensor:
    """For each class, its most frequent attribute in (`y`, `a`): the value a shortcut predicts the class by."""
    counts = torch.bincount(y * n_attributes + a, minlength=n_classes * n_attributes).view(n_classes, n_attributes)
    return counts.argmax(1)


def contradicts(y: torch.Tensor, a: torch.Tensor, majority: torch.Tensor) -> torch.Tensor:
    """Whether each example's attribute differs from its class's majority attribute (a minority-group example)."""
    return a != majority[y]


class ForgetRecord:
    """Accumulates, over one epoch of forget steps, the update ratios and the readout's correct counts before
    and after forgetting on majority and minority examples; `summary()` gives the numbers to log."""

    def __init__(self) -> None:
        self.ratios: list[float] = []
        self.counts: dict[str, list[float]] = {}  # key -> [correct, total]

    def add_ratio(self, ratio: float) -> None:
        if not math.isnan(ratio):
            self.ratios.append(ratio)

    def add_correct(self, when: str, correct: torch.Tensor, minority: torch.Tensor) -> None:
        """Count `correct` (one bool per example) `when` ("before" / "after") on minority and majority examples."""
        for part, mask in (("minority", minority), ("majority", ~minority)):
            tally = self.counts.setdefault(f"readout_acc_{when}_forget_{part}", [0.0, 0.0])
            tally[0] += float(correct[mask].sum())
            tally[1] += float(mask.sum())

    def summary(self) -> dict[str, float]:
        """Median and 90th percentile of the ratios, and each group accuracy with at least one example."""
        out: dict[str, float] = {}
        if self.ratios:
            r = torch.tensor(self.ratios, dtype=torch.float64)
            out["forget_update_ratio_median"] = float(r.quantile(0.5))
            out["forget_update_ratio_p90"] = float(r.quantile(0.9))
        out.update({k: c / n for k, (c, n) in sorted(self.counts.items()) if n > 0})
        return out
