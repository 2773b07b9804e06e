"""Every weight formula of the toolkit (pure functions of tensors), for methods of any family to share. Per
instance: JTT's and DeDiER's up-weights of errors, AFR's weights of hard examples, group-balanced and SPARE's
sampling weights, CVaR DRO's weights of a batch's largest losses. Per group or class: the re-balancing
baselines' weights by size (inverse size, inverse effective number)."""

from __future__ import annotations

import torch

from earlyreadout.params import Param, Uniform
from earlyreadout.readout.scores import margin, misclassified

ERROR_WEIGHT_PARAMS: dict[str, Param] = {
    "alpha": Param(0.05, "exponent on the readout margin in exp(beta * m^alpha)", low=0.0, open_low=True),
    "beta": Param(4.0, "scale in exp(beta * m^alpha); 0 = no up-weighting", low=0.0, search=Uniform(0.5, 5.0)),
}
WEIGHTINGS = ("exp", "lambda")


def upweights(errors: torch.Tensor, lambda_up: float) -> torch.Tensor:
    """JTT's weights: `lambda_up` on the error set (a boolean mask), 1 elsewhere."""
    return torch.where(errors, torch.tensor(float(lambda_up)), torch.tensor(1.0))


def error_weights(probs: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """DeDiER instance weights: `exp(beta * m**alpha)` where the readout errs (margin `m`), 1 elsewhere."""
    m = margin(probs).clamp_min(0)
    return torch.where(misclassified(probs, y), torch.exp(beta * m.pow(alpha)), torch.ones_like(m))


def flag_weights(probs: torch.Tensor, y: torch.Tensor, weighting: str, alpha: float, beta: float,
                 lambda_up: float) -> torch.Tensor:
    """Instance weights from a readout's errors: `exp` is DeDiER's `exp(beta * m**alpha)` on errors,
    `lambda` is JTT's `lambda_up` on every error; instances the readout gets right keep weight 1."""
    if weighting == "exp":
        return error_weights(probs, y, alpha, beta)
    if weighting == "lambda":
        return upweights(misclassified(probs, y), lambda_up).to(probs)
    raise ValueError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")


def afr_weights(logits: torch.Tensor, y: torch.Tensor, gamma: float, class_balanced: bool = True) -> torch.Tensor:
    """AFR's weights `exp(-gamma * p_i)` with `p_i` the ERM model's probability of the true label; with
    `class_balanced` each class's weights are scaled to the same total; normalised to sum 1."""
    p_true = logits.float().softmax(1).gather(1, y[:, None]).squeeze(1)
    weights = torch.exp(-gamma * p_true)
    if class_balanced:
        totals = torch.zeros(int(y.max()) + 1, dtype=weights.dtype).index_add_(0, y, weights)
        weights = weights / totals[y]
    return weights / weights.sum()


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
