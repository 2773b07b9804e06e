"""JTT-style distillation: up-weight, in the KD loss, the training examples an early-stopped ERM model got wrong."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.errors import UserError
from earlyreadout.methods.base import Context, register, run_loader, train_erm
from earlyreadout.methods.distill.distillation import KD_HPARAMS, WEIGHTING_HPARAMS, Distillation
from earlyreadout.models.inference import collect_logits
from earlyreadout.models.layers import unwrap
from earlyreadout.params import Choice, IntRange, Param
from earlyreadout.readout.scores import misclassified
from earlyreadout.readout.weights import upweights


@register("jtt-kd")
class JTTKD(Distillation):
    """JTT (Liu et al., ICML 2021) applied to distillation: the "no readout" baseline of DeDiER.

    The error set comes from an ERM copy of the student trained for `erm_epochs` at the start of the run
    (or from the selected model of the run `erm_run`); those examples weigh `lambda_up`, the rest 1.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **KD_HPARAMS,
        **WEIGHTING_HPARAMS,
        "lambda_up": Param(20.0, "weight of the examples the ERM model misclassified", low=1.0,
                           search=Choice((5.0, 20.0, 50.0))),
        "erm_epochs": Param(2, "epochs of the early-stopped ERM model that finds the error set", low=1,
                            search=IntRange(1, 4)),
        "erm_run": Param(None, "run directory whose selected model gives the error set instead (null = train "
                         "the ERM model inside this run)", nullable=True, kind=str, path=True),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.weights: torch.Tensor | None = None

    def on_epoch_start(self, epoch: int) -> None:
        if self.weights is None:  # once per run; a resumed run restores them from extra_state
            errors = misclassified(self.erm_logits(), self.ctx.train.y)
            self.weights = upweights(errors, self.hp["lambda_up"]).to(self.ctx.device)

    def erm_logits(self) -> torch.Tensor:
        """Train-set logits of the early-stopped ERM model (trained here, or loaded from `erm_run`)."""
        ctx = self.ctx
        if self.hp["erm_run"]:
            _, model, _ = run_loader(ctx)(self.hp["erm_run"], str(ctx.device))
        else:
            model = copy.deepcopy(unwrap(self.network))  # the student's initial weights, trained with CE only
            train_erm(model, self.make_optimizer(model.parameters()), ctx.shuffled_train_loader(),
                      self.hp["erm_epochs"], ctx.device)
        logits = collect_logits(model, model, ctx.train, ctx.eval_batch_size, ctx.device)
        if logits.shape[1] != ctx.n_classes:
            raise UserError(f"erm_run {self.hp['erm_run']!r} predicts {logits.shape[1]} classes but "
                            f"{ctx.train.name} has {ctx.n_classes}")
        return logits

    def instance_weights(self, batch: Batch) -> torch.Tensor | None:
        if self.weights is None:
            return None
        return self.weights[batch["idx"].to(self.weights.device)]

    def extra_state(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.weights = state["weights"]
