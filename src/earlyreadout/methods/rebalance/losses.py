"""Pure loss formulas of the re-balancing baselines (SubpopBench's imbalanced-learning family): functions of
tensors, tested against hand-computed values. Their weight formulas are in `earlyreadout.methods.sample_weights`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The batch mean of per-example cross-entropy times per-example `weights`."""
    return (weights.to(logits.dtype) * F.cross_entropy(logits, y, reduction="none")).mean()


def focal_terms(ce: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-example focal loss from per-example cross-entropy: `(1 - p)^gamma * ce` with `p = exp(-ce)`."""
    return (1.0 - torch.exp(-ce)) ** gamma * ce


def ldam_margins(class_counts: torch.Tensor, max_m: float) -> torch.Tensor:
    """LDAM's per-class margins `n^-1/4`, scaled so the largest is `max_m` (0 for an empty class)."""
    n = class_counts.double()
    m = torch.where(n > 0, n.clamp_min(1) ** -0.25, torch.zeros_like(n))
    return m * (max_m / m.max())


def ldam_logits(logits: torch.Tensor, y: torch.Tensor, margins: torch.Tensor, scale: float) -> torch.Tensor:
    """`scale * (logits - margin_y on the true class)`: the logits LDAM's cross-entropy reads."""
    shift = torch.zeros_like(logits).scatter_(1, y[:, None], margins.to(logits)[y][:, None])
    return scale * (logits - shift)


def prior_shifted_logits(logits: torch.Tensor, class_counts: torch.Tensor) -> torch.Tensor:
    """Balanced softmax: `logits + log n_c` (the training prior), read by the cross-entropy only."""
    return logits + class_counts.to(logits).clamp_min(1).log()
