"""Pure loss and weight formulas of the re-balancing baselines (SubpopBench's imbalanced-learning family):
functions of tensors, tested against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalized(weights: torch.Tensor) -> torch.Tensor:
    """`weights` scaled to sum to their number (the mean weight is 1), as SubpopBench's per-group weights."""
    return weights / weights.sum() * len(weights)


def inverse_size_weights(counts: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Per-bin loss weights `n^-power` (0 for an empty bin), normalised to mean 1: ReWeight (power 1) and
    SqrtReWeight (power 1/2)."""
    n = counts.double()
    return normalized(torch.where(n > 0, n.clamp_min(1) ** -power, torch.zeros_like(n)))


def effective_number_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Class-balanced loss weights `(1 - beta) / (1 - beta^n)` (the inverse effective number of a bin of n
    examples; 0 for an empty bin), normalised to mean 1."""
    n = counts.double()
    effective = 1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)
    return normalized(torch.where(n > 0, (1.0 - beta) / effective.clamp_min(1e-300), torch.zeros_like(n)))


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


def cvar_weights(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """The CVaR best response over a batch: weight `1 / (alpha m)` on the `int(alpha m)` largest of the m
    `losses`, the remainder of the unit mass on the next largest, 0 elsewhere (the weights sum to 1)."""
    m = len(losses)
    cutoff = int(alpha * m)
    p = torch.zeros_like(losses)
    order = torch.argsort(losses, descending=True, stable=True)
    p[order[:cutoff]] = 1.0 / (alpha * m)
    if cutoff < m:
        p[order[cutoff]] = 1.0 - cutoff / (alpha * m)
    return p
