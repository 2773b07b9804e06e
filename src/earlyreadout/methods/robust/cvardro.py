"""CVaR DRO: minimise the mean loss of the worst alpha-fraction of each batch."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.methods.sample_weights import cvar_weights
from earlyreadout.params import LogUniform, Param


@register("cvardro")
class CVaRDRO(Method):
    """CVaR DRO (Levy et al., NeurIPS 2020): the loss is `sum_i p_i loss_i` with p the CVaR best response.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` CVaRDRO with `learning/joint_dro.py`
    RobustLoss(alpha, reg=0, "cvar"): weight 1 / (alpha m) on the int(alpha m) largest losses of the batch,
    the rest of the unit mass on the next one. Under DDP the weights are those of the global batch (losses
    gathered from every rank), so two processes take one process's step. No group labels are used.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "alpha": Param(0.1, "fraction of each batch whose mean loss is minimised (1: ERM)", low=0.0, high=1.0,
                       open_low=True, search=LogUniform(0.01, 1.0)),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        losses = F.cross_entropy(self.network(batch["x"]), batch["y"], reduction="none")
        world = self.ctx.world_size
        everyone = distributed.all_gather_cat(losses.detach(), losses.device) if world > 1 else losses.detach()
        p = cvar_weights(everyone.double(), self.hp["alpha"])
        mine = p.view(world, -1)[self.ctx.rank].to(losses)
        loss = (mine * losses).sum() * world  # DDP averages gradients over ranks
        self.minimize(loss, self.optimizers["main"])
        return {"loss": float((p * everyone.double()).sum())}
