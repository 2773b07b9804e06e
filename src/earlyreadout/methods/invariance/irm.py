"""Invariant risk minimisation: per-domain risks plus the IRMv1 penalty, with the attribute as the domain."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.methods.invariance.feature_matching import irm_penalty
from earlyreadout.params import IntRange, LogUniform, Param


@register("irm")
class IRM(Method):
    """IRM (Arjovsky et al., 2019) as SubpopBench's `IRM` (learning/algorithms.py); deviations below.

    The loss is the mean over the batch's attribute domains of their cross-entropy plus `penalty` times their
    IRMv1 penalty (the product of the two halves' gradients at the dummy scale); the penalty weight is 1 for
    the first `anneal_steps` steps. Deviations: a domain is halved by example index parity instead of batch
    position, so the halves do not depend on how a batch is sharded; a half that is empty adds no penalty (the
    reference gives NaN). Under DDP the logits of the global batch are gathered, so two processes train as
    one.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "penalty": Param(100.0, "weight of the IRM penalty after the anneal (the reference's irm_lambda)",
                         low=0.0, search=LogUniform(0.1, 1e5)),
        "anneal_steps": Param(500, "steps with penalty weight 1 before `penalty` applies (the reference's "
                              "irm_penalty_anneal_iters)", low=0, search=IntRange(1, 10_000)),
    }
    group_labels: ClassVar[str] = "train"

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        logits = distributed.gather_live(self.network(batch["x"])).float()
        y, a, idx = (distributed.gather_live(batch[k]) for k in ("y", "a", "idx"))
        domains = a.unique()
        nll = torch.stack([F.cross_entropy(logits[a == d], y[a == d]) for d in domains]).mean()
        penalty = torch.stack([irm_penalty(logits[a == d], y[a == d], idx[a == d] % 2 == 0)
                               for d in domains]).mean()
        weight = self.hp["penalty"] if step >= self.hp["anneal_steps"] else 1.0  # step: the run's global step
        self.minimize(nll + weight * penalty, self.optimizers["main"])
        return {"loss": nll.item(), "penalty": penalty.item()}
