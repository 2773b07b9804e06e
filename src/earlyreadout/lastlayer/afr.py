"""Automatic Feature Reweighting (Qiu et al., ICML 2023): the ERM head retrained on held-out data whose
examples weigh `exp(-gamma * p_true)`, so the ones ERM finds hard dominate, with a pull towards the ERM head."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def afr_loss(weight: torch.Tensor, bias: torch.Tensor, z: torch.Tensor, y: torch.Tensor, sample_weights: torch.Tensor,
             weight0: torch.Tensor, bias0: torch.Tensor, lam: float) -> torch.Tensor:
    """Weighted cross-entropy plus `lam * (||W - W0||^2 + ||b - b0||^2)`."""
    ce = F.cross_entropy(z @ weight.T + bias, y, reduction="none")
    return (sample_weights * ce).sum() + lam * ((weight - weight0).pow(2).sum() + (bias - bias0).pow(2).sum())


def fit_afr(z: torch.Tensor, y: torch.Tensor, sample_weights: torch.Tensor, weight0: torch.Tensor, bias0: torch.Tensor,
            lam: float, steps: int = 300, lr: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch Adam on `afr_loss` from the ERM head (`weight0`, `bias0`)."""
    weight = weight0.detach().clone().float().requires_grad_(True)
    bias = bias0.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    w0, b0 = weight0.detach().float(), bias0.detach().float()
    for _ in range(steps):
        loss = afr_loss(weight, bias, z, y, sample_weights, w0, b0, lam)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach()
