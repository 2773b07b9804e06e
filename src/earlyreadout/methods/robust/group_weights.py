"""Group statistics and weights shared by the methods that train on groups (given or inferred): per-group loss
sums, Group DRO's exponentiated-gradient weights and its loss (sampling weights: methods/sample_weights.py)."""

from __future__ import annotations

import torch

from earlyreadout import distributed


def group_sums(losses: torch.Tensor, g: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of `losses` per group, number of examples per group) of one batch."""
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, g, losses)
    counts = torch.bincount(g, minlength=n_groups).to(losses.dtype)
    return sums, counts


def update_group_weights(q: torch.Tensor, group_loss: torch.Tensor, present: torch.Tensor, eta: float,
                         adjustment: torch.Tensor | None = None) -> torch.Tensor:
    """One exponentiated-gradient step: `q_g *= exp(eta * (loss_g + adjustment_g))` for groups present
    in the batch (absent groups keep their weight before renormalising), then normalise to sum 1."""
    step = group_loss if adjustment is None else group_loss + adjustment
    factor = torch.where(present, torch.exp(eta * step), torch.ones_like(step))
    new = q * factor
    return new / new.sum()


def group_dro_loss(losses: torch.Tensor, g: torch.Tensor, q: torch.Tensor, eta: float, world_size: int,
                   adjustment: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Group DRO's step on per-example `losses` of groups `g`: update the weights `q` (in place) from the
    global batch's group losses (summed over ranks), and return this rank's share of `sum_g q_g * mean_g` (DDP
    averages gradients, hence the world-size factor) with numbers to log."""
    sums, counts = group_sums(losses.detach().double(), g, len(q))
    sums, counts = distributed.all_reduce_sum(sums), distributed.all_reduce_sum(counts)
    present = counts > 0
    group_loss = sums / counts.clamp_min(1)
    q.copy_(update_group_weights(q, group_loss, present, eta, adjustment))
    local_sums, _ = group_sums(losses, g, len(q))
    loss = ((q / counts.clamp_min(1)).to(losses.dtype) * local_sums).sum() * world_size
    return loss, {"loss": float((q * group_loss).sum()), "worst_group_loss": float(group_loss[present].max()),
                  "q_max": float(q.max())}
