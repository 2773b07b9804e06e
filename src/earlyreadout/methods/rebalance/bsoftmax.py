"""Balanced softmax: the training loss sees logits shifted by the log class prior; predictions do not."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, Method, register
from earlyreadout.methods.rebalance.losses import prior_shifted_logits


@register("bsoftmax")
class BSoftmax(Method):
    """Balanced softmax (Ren et al., NeurIPS 2020): cross-entropy of `logits + log n_c`; predictions unshifted.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` BSoftmax (class counts only, so no group
    labels are used). Deviation: an empty class counts as 1 (the reference's log 0 = -inf).
    """

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        counts = torch.bincount(ctx.train.y, minlength=ctx.n_classes).float()
        self.register_buffer("class_counts", counts, persistent=False)

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        loss = F.cross_entropy(prior_shifted_logits(self.network(batch["x"]), self.class_counts), batch["y"])
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}
