"""Per-instance readout scores: errors, margins and confident errors (pure functions of tensors)."""

from __future__ import annotations

import torch


def misclassified(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True where the argmax of `scores` (logits or probabilities) is not the label: the error set."""
    return scores.argmax(1) != y


def margin(probs: torch.Tensor) -> torch.Tensor:
    """`p_top1 - p_top2` per row (for two classes, `|p0 - p1|`)."""
    top = probs.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def confident_error(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The readout's margin where its argmax is wrong, 0 where it is right.

    High values flag instances a shallow readout confidently gets wrong: typically those whose label the
    spurious feature contradicts.
    """
    return torch.where(misclassified(probs, y), margin(probs), torch.zeros_like(probs[:, 0]))


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
