"""Focal loss: cross-entropy down-weighted on examples the network already fits well."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.methods.rebalance.losses import focal_terms
from earlyreadout.params import LogUniform, Param


@register("focal")
class Focal(Method):
    """Focal loss (Lin et al., ICCV 2017): the batch mean of `(1 - p_y)^gamma * CE`. No group labels are used.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` Focal (gamma 1, searched 0.5 * 10^U(0, 1)).
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "gamma": Param(1.0, "focusing exponent (0: plain cross-entropy)", low=0.0, search=LogUniform(0.5, 5.0)),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        ce = F.cross_entropy(self.network(batch["x"]), batch["y"], reduction="none")
        loss = focal_terms(ce, self.hp["gamma"]).mean()
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}
