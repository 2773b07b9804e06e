"""SELF: last-layer fine-tuning on the validation points where an early checkpoint and the final model disagree."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.lastlayer.disagreement import class_balanced_finetune, disagreement, top_k
from earlyreadout.lastlayer.embeddings import embed
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.refit.last_layer import (
    LAST_LAYER_HPARAMS,
    LastLayerRetraining,
    head_score,
    tuning_groups,
)
from earlyreadout.models.layers import unwrap
from earlyreadout.params import Choice, IntRange, LogUniform, Param

KS = (20, 50, 100, 200, 500)  # the paper's range of k, searched when k is null


@register("self")
class SELF(LastLayerRetraining):
    """SELF (LaBonte et al., NeurIPS 2023; reference `milkshake` last-layer fine-tuning): the network at the end
    of epoch `early_epoch` is kept; after selection, half of validation is scored by KL(final || early); the
    top `k` are the fine-tuning set of a class-balanced last-layer fine-tune from the ERM head.

    The other half of validation chooses k with its group labels (as the paper), or worst-class accuracy
    without them. No group labels are used for fitting.
    """

    group_labels: ClassVar[str] = "val"
    labels_optional: ClassVar[bool] = True  # without them, worst-class accuracy tunes it
    hparams: ClassVar[dict[str, Param]] = {
        **LAST_LAYER_HPARAMS,
        "early_epoch": Param(1, "epochs of the early-stopped checkpoint (paper: 1-5); below train.epochs", low=1,
                             search=IntRange(1, 3)),
        "k": Param(None, f"points kept for fine-tuning; null: chosen from {KS} on validation", kind=int,
                   nullable=True, low=1, search=Choice(KS)),
        "head_steps": Param(250, "full-batch SGD steps of the fine-tune (paper: 250)", low=1, search=IntRange(50, 1000)),
        "head_lr": Param(1e-2, "SGD learning rate of the fine-tune (paper: 1e-4 to 1e-2)", low=0.0, open_low=True,
                         search=LogUniform(1e-4, 1e-1)),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.early_state: dict[str, torch.Tensor] | None = None

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == self.hp["early_epoch"] and self.early_state is None:
            self.early_state = {k: v.detach().cpu().clone() for k, v in unwrap(self.network).state_dict().items()}

    def source_problem(self, source_method: str) -> str | None:
        if self.early_state is None:
            return (f"SELF needs the network after epoch {self.hp['early_epoch']}, which only a run trained with "
                    "--method self keeps; train one, or refit this run with dfr, afr or readout-dfr")
        return None

    def retrain(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self.early_state is None:
            raise UserError(f"self: method.early_epoch={self.hp['early_epoch']} must be below train.epochs")
        val_set = self.validation("its disagreement set and its choice of k")
        val = self.embeddings(val_set)
        early_net = copy.deepcopy(unwrap(self.network))
        early_net.load_state_dict(self.early_state)
        early = embed(early_net, val_set, self.classifier, batch_size=self.ctx.eval_batch_size, device=self.ctx.device)
        order = torch.randperm(len(val.y), generator=torch.Generator().manual_seed(self.ctx.seed))
        pool, tune = order[: len(order) // 2], order[len(order) // 2:]
        ranked = pool[top_k(disagreement(val.logits[pool], early.logits[pool]), len(pool))]
        w0, b0 = self.head()
        groups = tuning_groups(val)[tune.numpy()]
        scores, best = {}, None
        for k in (KS if self.hp["k"] is None else (self.hp["k"],)):
            chosen = ranked[:k]
            head = class_balanced_finetune(val.z[chosen], val.y[chosen], w0, b0, self.ctx.n_classes,
                                           self.hp["head_steps"], self.hp["head_lr"])
            scores[str(k)] = score = head_score(*head, val.z[tune], val.y[tune].numpy(), groups)
            if best is None or score > best[0]:
                best = (score, head, k)
        _, (weight, bias), k = best
        return weight, bias, {"fitted_on": "val", "labels": "val groups (tuning only)", "k": k,
                              "tuning_worst_group": scores}

    def extra_state(self) -> dict[str, Any]:
        return {"early_state": self.early_state}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.early_state = state.get("early_state")
