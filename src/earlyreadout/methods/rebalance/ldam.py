"""LDAM: cross-entropy with a larger margin for the rarer classes."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.methods.rebalance.losses import ldam_logits, ldam_margins
from earlyreadout.params import Choice, LogUniform, Param


@register("ldam")
class LDAM(Method):
    """Label-distribution-aware margin loss (Cao et al., NeurIPS 2019), without the deferred re-weighting.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` LDAM: class margins `n_c^-1/4` scaled to
    `max_m` are subtracted from the true class's logit, and the cross-entropy reads `scale` times the result.
    The margins use class counts only (attribute-agnostic, as the reference), so no group labels are used.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "max_m": Param(0.5, "margin of the rarest class", low=0.0, open_low=True, search=LogUniform(0.1, 0.794)),
        "scale": Param(30.0, "logit scale s of the loss", low=0.0, open_low=True, search=Choice((10.0, 30.0))),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        counts = torch.bincount(ctx.train.y, minlength=ctx.n_classes)
        self.register_buffer("margins", ldam_margins(counts, hp["max_m"]).float(), persistent=False)

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        logits = ldam_logits(self.network(batch["x"]), batch["y"], self.margins, self.hp["scale"])
        loss = F.cross_entropy(logits, batch["y"])
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}
