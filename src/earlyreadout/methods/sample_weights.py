"""Weights from group sizes and losses (pure functions of tensors), shared by the re-balancing, robust,
group-inference and last-layer families: group-balanced and SPARE's sampling weights, the re-balancing
baselines' weights by size (inverse size, inverse effective number), CVaR DRO's weights of a batch's largest
losses."""

from __future__ import annotations

import torch


def group_balanced_weights(g: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-instance sampling weights `1 / n_g` that make every non-empty group equally likely."""
    counts = torch.bincount(g, minlength=n_groups).double()
    return (1.0 / counts.clamp_min(1))[g]


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


def spare_weights(y: torch.Tensor, clusters: torch.Tensor, powers: torch.Tensor) -> torch.Tensor:
    """SPARE's sampling weights: `1 / n_{c,k} ** power_c` for an example of class c in cluster k, normalised
    to sum 1 within each class (every class equally likely)."""
    groups = y * (int(clusters.max()) + 1) + clusters
    counts = torch.bincount(groups).double()
    weights = counts[groups] ** -powers[y].double()
    class_totals = torch.zeros(int(y.max()) + 1, dtype=torch.float64).index_add(0, y, weights)
    return weights / class_totals[y]


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
