"""Distillation from a frozen teacher run: the settings and the step every distillation method shares."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, run_loader
from earlyreadout.methods.distill.distill_losses import WEIGHTED_TERMS, distillation_loss
from earlyreadout.methods.distill.teacher import FrozenTeacher
from earlyreadout.params import Choice, Param, Uniform

KD_HPARAMS: dict[str, Param] = {
    **OPTIMIZER_HPARAMS,
    "teacher": Param(None, "run directory of the trained teacher (frozen; its selected checkpoint is used)",
                     nullable=True, kind=str, path=True),
    "temperature": Param(3.0, "softmax temperature T of the KD term", low=0.0, open_low=True,
                         search=Choice((1.0, 2.0, 3.0, 5.0))),
    "kd_weight": Param(1.0, "a: weight of the KD term; 1 - a weighs cross-entropy with the labels",
                       low=0.0, high=1.0, search=Uniform(0.0, 1.0)),
    "cache_teacher": Param(True, "compute the teacher's train logits once and look them up by example "
                           "(turn off if inputs change between epochs, e.g. random augmentation)"),
}

WEIGHTING_HPARAMS: dict[str, Param] = {
    "weighted_terms": Param("both", "which loss terms the instance weight multiplies", choices=WEIGHTED_TERMS),
    "normalize_weights": Param(False, "divide the weighted loss by the batch's mean weight (keeps the loss "
                               "scale of plain KD) instead of the reference's plain mean"),
}


class Distillation(Method):
    """`a T^2 KL(teacher_T || student_T) + (1 - a) CE` with the teacher frozen, each instance's terms
    multiplied by the weight `instance_weights` gives it (uniform here; weighting methods supply theirs)."""

    hparams: ClassVar[dict[str, Param]] = KD_HPARAMS

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.teacher = FrozenTeacher(hp["teacher"], ctx.train, ctx.example_input, ctx.device, run_loader(ctx),
                                     cache=hp["cache_teacher"], batch_size=ctx.eval_batch_size)
        self.optimizers["main"] = self.make_optimizer(network.parameters())

    def instance_weights(self, batch: Batch) -> torch.Tensor | None:
        """Weights of this batch's instances, called right after the student's forward (None: uniform)."""
        return None

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        logits = self.network(batch["x"])
        weights = self.instance_weights(batch)
        args = (logits, self.teacher.logits(batch), batch["y"], self.hp["temperature"], self.hp["kd_weight"])
        if weights is None:
            loss = distillation_loss(*args)
        else:  # methods that weight declare WEIGHTING_HPARAMS
            loss = distillation_loss(*args, weights, self.hp["weighted_terms"], self.hp["normalize_weights"])
        self.minimize(loss, self.optimizers["main"])
        stats = {"loss": loss.item()}
        if weights is not None:
            stats["mean_weight"] = weights.float().mean().item()
            stats["upweighted"] = (weights > 1).float().mean().item()
        return stats
