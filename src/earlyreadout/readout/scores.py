"""Per-instance readout scores: margins, confident errors, and distillation weights (pure functions)."""

from __future__ import annotations

import torch


def margin(probs: torch.Tensor) -> torch.Tensor:
    """`p_top1 - p_top2` per row (for two classes, `|p0 - p1|`)."""
    top = probs.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def confident_error(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The readout's margin where its argmax is wrong, 0 where it is right.

    High values flag instances a shallow readout confidently gets wrong: typically those whose label the
    spurious feature contradicts.
    """
    wrong = probs.argmax(1) != y
    return torch.where(wrong, margin(probs), torch.zeros_like(probs[:, 0]))


def error_weights(probs: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """DeDiER instance weights: `exp(beta * m**alpha)` where the readout errs (margin `m`), 1 elsewhere."""
    wrong = probs.argmax(1) != y
    m = margin(probs).clamp_min(0)
    return torch.where(wrong, torch.exp(beta * m.pow(alpha)), torch.ones_like(m))


def readout_outputs(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Everything the diagnosis reports per instance from readout logits and labels."""
    return probability_outputs(logits.float().softmax(1), y)


def probability_outputs(probs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """`readout_outputs` from class probabilities (e.g. averaged over several readouts)."""
    pred = probs.argmax(1)
    return {
        "pred": pred,
        "probs": probs,
        "margin": margin(probs),
        "correct": pred == y,
        "confident_error": confident_error(probs, y),
    }


WEIGHTINGS = ("exp", "lambda")


def flag_weights(probs: torch.Tensor, y: torch.Tensor, weighting: str, alpha: float, beta: float,
                 lambda_up: float) -> torch.Tensor:
    """Instance weights from a readout's errors: `exp` is DeDiER's `exp(beta * m**alpha)` on errors,
    `lambda` is JTT's `lambda_up` on every error; instances the readout gets right keep weight 1."""
    if weighting == "exp":
        return error_weights(probs, y, alpha, beta)
    if weighting == "lambda":
        wrong = probs.argmax(1) != y
        return torch.where(wrong, torch.full_like(probs[:, 0], float(lambda_up)), torch.ones_like(probs[:, 0]))
    raise ValueError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
