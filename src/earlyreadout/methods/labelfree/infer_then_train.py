"""The shared first stage of the label-free group-inference methods (SPARE, EIIL): a short ERM run whose
train-set outputs are read, then a restart from the initial weights."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, snapshot, train_erm
from earlyreadout.models.inference import collect_logits
from earlyreadout.params import IntRange, Param

INFERENCE_HPARAMS: dict[str, Param] = {
    **OPTIMIZER_HPARAMS,
    "erm_epochs": Param(1, "epochs of the ERM model whose train-set outputs the groups are inferred from "
                        "(the reference's infer_num_epochs)", low=1, search=IntRange(1, 5)),
}


class InferThenTrain(Method):
    """Stage 1 (once per run, inside the first epoch's `on_epoch_start`, so `train.epochs` counts the final
    model's epochs): ERM for `erm_epochs` from the network's initial weights; its train-set logits go to
    `infer`. Stage 2 restarts from the initial weights with a fresh optimizer; a resumed run restores what
    `infer` found through `extra_state` and skips stage 1."""

    hparams: ClassVar[dict[str, Param]] = INFERENCE_HPARAMS

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.initial_state = snapshot(network)
        self.optimizers["main"] = self.make_optimizer(network.parameters())

    def stage1_logits(self) -> torch.Tensor:
        """Train ERM for `erm_epochs`, return its logits on every training example (on every rank), then
        restore the initial network and a fresh optimizer."""
        ctx = self.ctx
        train_erm(self.network, self.optimizers["main"], ctx.train_loader, self.hp["erm_epochs"], ctx.device)
        logits = collect_logits(self.predict, self, ctx.train, ctx.eval_batch_size, ctx.device, ctx.rank,
                                ctx.world_size, desc="group inference", progress=False)
        self.restart(self.initial_state)
        return logits.float()
