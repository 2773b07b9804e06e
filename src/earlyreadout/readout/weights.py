"""Weights from a model's errors (pure functions of tensors): JTT's and DeDiER's up-weights of errors and of
readout confident errors, AFR's weights of hard examples. Weights from group sizes and losses live in
`methods/sample_weights.py`."""

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
