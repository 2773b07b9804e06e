"""Readout reweighting: ERM whose loss up-weights what a cross-fitted early readout gets confidently wrong."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import (
    OPTIMIZER_HPARAMS,
    Context,
    Method,
    apply_upweights,
    register,
    snapshot,
    train_erm,
)
from earlyreadout.params import Choice, IntRange, Param
from earlyreadout.readout.weighters import CROSS_FIT_WEIGHTER_PARAMS, CrossFitReadoutWeighter


@register("readout-reweight")
class ReadoutReweightedERM(Method):
    """Teacher-free early-readout debiasing: DeDiER's readout weights applied to the labels' cross-entropy.

    After `warmup_epochs` of plain ERM, fresh readout heads on the detached `readout_layer` are fitted with
    cross-fitting and score every training instance; the ones they get wrong are up-weighted (DeDiER's
    `exp(beta * m^alpha)` or JTT's `lambda_up`), by loss weight (divided by the mean weight over the
    training set, so the expected step size is ERM's) or by sampling in proportion to the weights.
    `refresh=once` keeps the first weights for the rest of the run; `refresh=epoch` recomputes them at every
    epoch start. No group labels are used. Defaults: the setting with the highest mean validation worst-group
    accuracy over both built-in benchmarks in the full-size search of benchmarks/label_free.py.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "readout_layer": Param("stage:2", "layer the readout reads: a module path, or stage:N for the model's "
                               "N-th named stage", search=Choice(("stage:1", "stage:2")), layer=True),
        **CROSS_FIT_WEIGHTER_PARAMS,
        "upweight": Param("loss", "loss: multiply each instance's loss by its weight; sample: draw instances in "
                          "proportion to their weights", choices=("loss", "sample"),
                          search=Choice(("loss", "sample"))),
        "refresh": Param("epoch", "once: score the train set once, after the warm-up; epoch: re-score it at "
                         "every epoch start", choices=("once", "epoch"), search=Choice(("once", "epoch"))),
        "warmup_epochs": Param(1, "epochs of plain ERM before the first scoring", low=0, search=IntRange(0, 3)),
        "restart": Param(False, "after the first scoring, restart from the initial weights with a fresh optimizer "
                         "(as JTT's second stage); the warm-up then runs before the first epoch, outside "
                         "train.epochs", search=Choice((False, True))),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        layer = ctx.layer(hp["readout_layer"], "readout_layer")
        self.weighter = CrossFitReadoutWeighter(network, layer, ctx.n_classes, ctx.example_input,
                                                **{k: hp[k] for k in CROSS_FIT_WEIGHTER_PARAMS})
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.initial_state = snapshot(network) if hp["restart"] else None
        self.weights: torch.Tensor | None = None
        self.loss_weights: torch.Tensor | None = None
        self.stats: dict[str, float] = {}

    def on_epoch_start(self, epoch: int) -> None:
        if self.initial_state is not None and self.weights is None:
            self.warm_up_and_restart()
        elif epoch < self.hp["warmup_epochs"]:
            return
        if self.weights is None or self.hp["refresh"] == "epoch":
            self.weights = self.score()
        self.loss_weights = apply_upweights(self.weights, self.hp["upweight"], self.ctx.train_loader, self.ctx.device)

    def warm_up_and_restart(self) -> None:
        """`warmup_epochs` of ERM, the first scoring, then the initial weights and a fresh optimizer back."""
        train_erm(self.network, self.optimizers["main"], self.ctx.train_loader, self.hp["warmup_epochs"], self.ctx.device)
        self.weights = self.score()
        self.restart(self.initial_state)

    def score(self) -> torch.Tensor:
        seed = int(torch.randint(2**31 - 1, ()))  # drawn from the epoch's seeded RNG: same on every rank
        weights = self.weighter.weights(self.ctx.train, seed, self.ctx.train_loader.batch_size)
        self.stats = dict(self.weighter.last)
        return weights

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        losses = F.cross_entropy(self.network(batch["x"]), batch["y"], reduction="none")
        if self.loss_weights is not None:
            losses = losses * self.loss_weights[batch["idx"].to(self.ctx.device)]
        loss = losses.mean()
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item(), **self.stats}

    def extra_state(self) -> dict[str, Any]:
        return {"weights": self.weights, "stats": self.stats}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        weights = state.get("weights")
        self.weights = None if weights is None else weights.cpu()
        self.stats = dict(state.get("stats", {}))
