"""DeDiER: distillation whose per-instance weights come from an early readout's confident errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.distill.distillation import KD_HPARAMS, WEIGHTING_HPARAMS, Distillation
from earlyreadout.models.inference import collect_logits
from earlyreadout.params import Choice, Param
from earlyreadout.readout.heads import READOUT_HEAD_PARAMS
from earlyreadout.readout.weighters import (
    CROSS_FIT_WEIGHTER_PARAMS,
    LIVE_WEIGHTER_PARAMS,
    CrossFitReadoutWeighter,
    LiveReadoutWeighter,
)
from earlyreadout.readout.weights import ERROR_WEIGHT_PARAMS, error_weights


@register("dedier")
class DeDiER(Distillation):
    """Early-readout debiased distillation (Tiwari et al., WACV 2024): up-weight what an early readout gets wrong.

    The readout reads a detached early feature of the student, so the student's early layers keep learning
    from the distillation loss alone. `refresh=epoch` (the reference) re-fits the readout over the train set
    at each epoch start and recomputes every weight; `refresh=online` weighs each batch with the live
    readout, which takes one step per batch. Epochs before `warmup_epochs` use uniform weights. With
    `folds >= 2` an epoch refresh uses cross-fitted readouts (`CrossFitReadoutWeighter`), not one readout.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **KD_HPARAMS,
        **WEIGHTING_HPARAMS,
        "alpha": CROSS_FIT_WEIGHTER_PARAMS["alpha"],
        "beta": replace(ERROR_WEIGHT_PARAMS["beta"], help="scale in exp(beta * m^alpha); 0 = plain KD"),
        "readout_layer": Param("stage:1", "student layer the readout reads: a module path, or stage:N for "
                               "the model's N-th named stage", search=Choice(("stage:1", "stage:2")), layer=True),
        **READOUT_HEAD_PARAMS,
        "readout_epochs": Param(1, "passes over the train set that re-fit the readout at each refresh "
                                "(refresh=epoch)", low=1),
        "refresh": Param("epoch", "epoch: re-fit the readout and recompute all weights at each epoch start; "
                         "online: weigh each batch with the live readout", choices=("epoch", "online")),
        "reinit_readout": Param(True, "re-initialise the readout before each epoch refresh"),
        "warmup_epochs": Param(1, "epochs with uniform weights at the start", low=0),
        "folds": Param(1, "cross-fitting folds of the epoch refresh: with 2 or more, each instance is weighed by "
                       "readout heads that never trained on it (as readout-reweight does)", low=1,
                       search=Choice((1, 2))),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.readout_layer = ctx.layer(hp["readout_layer"], "readout_layer")
        self.weighter = LiveReadoutWeighter(network, self.readout_layer, ctx.n_classes, ctx.example_input,
                                            **{k: hp[k] for k in LIVE_WEIGHTER_PARAMS})
        self.optimizers["readout"] = self.weighter.optimizer
        self.crossfit = None
        if hp["folds"] > 1:
            shared = (*READOUT_HEAD_PARAMS, "readout_epochs", "folds", "alpha", "beta")
            self.crossfit = CrossFitReadoutWeighter(network, self.readout_layer, ctx.n_classes,
                                                    ctx.example_input, weighting="exp",
                                                    **{k: hp[k] for k in shared})
        self.epoch = 0
        self.refreshes = 0
        self.weights: torch.Tensor | None = None

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        if self.hp["refresh"] == "epoch" and epoch >= self.hp["warmup_epochs"]:
            self.refresh()

    def refresh(self) -> None:
        """Re-fit the readout over the train set on the student as it is now, then weigh every example."""
        if self.crossfit is not None:
            seed = int(torch.randint(2**31 - 1, ()))
            self.weights = self.crossfit.weights(self.ctx.train, seed, self.ctx.train_loader.batch_size)
            self.weights = self.weights.to(self.ctx.device)
            self.refreshes += 1
            return
        if self.hp["reinit_readout"]:
            self.weighter.reset()
        device = self.ctx.device
        loader = self.ctx.shuffled_train_loader()
        was_training = self.network.training
        self.network.eval()  # features as at inference: no batch-norm statistics are updated
        try:
            for e in range(self.hp["readout_epochs"]):
                loader.set_epoch(e)
                self.weighter.fit(lambda x: self.network(x.to(device)), loader)
        finally:
            self.network.train(was_training)

        def readout_logits(x: torch.Tensor) -> torch.Tensor:
            self.network(x)
            return self.weighter.logits()

        logits = collect_logits(readout_logits, self, self.ctx.train, self.ctx.eval_batch_size, device)
        self.weights = error_weights(logits.softmax(1), self.ctx.train.y, self.hp["alpha"],
                                     self.hp["beta"]).to(device)
        self.refreshes += 1

    def instance_weights(self, batch: Batch) -> torch.Tensor | None:
        if self.hp["refresh"] == "epoch":
            return None if self.weights is None else self.weights[batch["idx"].to(self.weights.device)]
        weights = self.weighter.weights(batch["y"]) if self.epoch >= self.hp["warmup_epochs"] else None
        self.weighter.update(batch["y"])
        return weights

    def extra_state(self) -> dict[str, Any]:
        return {"weights": self.weights, "refreshes": self.refreshes}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.weights, self.refreshes = state["weights"], state["refreshes"]
