"""Empirical risk minimisation: plain cross-entropy, the baseline every method is compared with."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, Method, register


@register("erm")
class ERM(Method):
    """Cross-entropy on the main output, one optimizer over the whole network."""

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        loss = F.cross_entropy(self.network(batch["x"]), batch["y"])
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}
