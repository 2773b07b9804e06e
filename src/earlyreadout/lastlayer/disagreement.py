"""SELF (LaBonte et al., NeurIPS 2023): where an early-stopped ERM checkpoint and the final model disagree
most, the final model's shortcut fails; fine-tune the last layer, class-balanced, on the top-k of them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def disagreement(final_logits: torch.Tensor, early_logits: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_final || p_early): how far the early checkpoint's prediction is from the final one."""
    log_final, log_early = final_logits.float().log_softmax(1), early_logits.float().log_softmax(1)
    return (log_final.exp() * (log_final - log_early)).sum(1)


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` highest scores (all when there are fewer), highest first."""
    return scores.argsort(descending=True, stable=True)[: min(k, len(scores))]


def class_balanced_finetune(z: torch.Tensor, y: torch.Tensor, weight0: torch.Tensor, bias0: torch.Tensor,
                            n_classes: int, steps: int = 250, lr: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch SGD (momentum 0.9) on cross-entropy with every class weighted equally, from the ERM head."""
    weight = weight0.detach().clone().float().requires_grad_(True)
    bias = bias0.detach().clone().float().requires_grad_(True)
    counts = torch.bincount(y, minlength=n_classes).float()
    class_weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    optimizer = torch.optim.SGD([weight, bias], lr=lr, momentum=0.9)
    for _ in range(steps):
        loss = (F.cross_entropy(z @ weight.T + bias, y, reduction="none") * class_weights[y]).sum() / (counts > 0).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach()
