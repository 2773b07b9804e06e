"""Knowledge-distillation losses per instance, and their weighted means (pure functions of tensors).

`L_i = a * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - a) * CE(z_s, y)` (Hinton et al. 2015);
DeDiER and JTT-style distillation multiply chosen terms of `L_i` by a per-instance weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WEIGHTED_TERMS = ("both", "kd", "ce")


def kd_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """`T^2 * KL(softmax(z_t/T) || softmax(z_s/T))` per instance; the T^2 keeps gradients comparable across T."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return temperature**2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)


def distillation_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                       temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(KD term, cross-entropy term) per instance, both unweighted and unmixed."""
    return (kd_divergence(student_logits, teacher_logits, temperature),
            F.cross_entropy(student_logits.float(), y, reduction="none"))


def per_instance_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                              temperature: float = 3.0, kd_weight: float = 1.0,
                              weights: torch.Tensor | None = None, weighted_terms: str = "both") -> torch.Tensor:
    """`L_i` per instance, with `weights` multiplying the terms `weighted_terms` names (both, kd or ce)."""
    if weighted_terms not in WEIGHTED_TERMS:
        raise ValueError(f"weighted_terms must be one of {', '.join(WEIGHTED_TERMS)}, got {weighted_terms!r}")
    kd, ce = distillation_terms(student_logits, teacher_logits, y, temperature)
    if weights is not None:
        weights = weights.to(kd)
        if weighted_terms in ("both", "kd"):
            kd = weights * kd
        if weighted_terms in ("both", "ce"):
            ce = weights * ce
    return kd_weight * kd + (1.0 - kd_weight) * ce


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                      temperature: float = 3.0, kd_weight: float = 1.0, weights: torch.Tensor | None = None,
                      weighted_terms: str = "both", normalize: bool = False) -> torch.Tensor:
    """Batch loss: the mean of `L_i` with `weights` on `weighted_terms` (the reference's weighted loss).

    `normalize` divides by the batch's mean weight, so only relative weights matter and the loss keeps the
    scale of unweighted distillation (large up-weights then do not act as a larger learning rate).
    """
    per = per_instance_distillation(student_logits, teacher_logits, y, temperature, kd_weight, weights,
                                    weighted_terms)
    if weights is None or not normalize:
        return per.mean()
    return per.mean() / weights.to(per).mean()
