"""ReWeightCRT: classifier re-training with a re-weighted loss on the features of an ERM stage."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.rebalance.balance import BALANCE_BY, Balanced, bin_counts, bins
from earlyreadout.methods.rebalance.losses import weighted_cross_entropy
from earlyreadout.methods.refit.classifier_retraining import CRT_HPARAMS, ClassifierRetraining
from earlyreadout.methods.sample_weights import inverse_size_weights
from earlyreadout.params import Param


@register("reweight-crt")
class ReWeightCRT(ClassifierRetraining, Balanced):
    """Classifier re-training with inverse-frequency loss weights (Kang et al., ICLR 2020): ERM, then the
    re-initialised classifier trained on frozen features with ReWeight's per-group (or per-class) weights.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` ReWeightCRT. Deviations as CRT's: the ERM stage
    runs inside this run (`erm_epochs`), and the frozen network is in eval mode.
    """

    hparams: ClassVar[dict[str, Param]] = {**CRT_HPARAMS, "balance_by": BALANCE_BY}

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        weights = inverse_size_weights(bin_counts(ctx.train, hp["balance_by"])).float()
        self.register_buffer("weights", weights, persistent=False)

    def head_loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        weights = self.weights[bins(batch["g"], batch["y"], self.hp["balance_by"])]
        return weighted_cross_entropy(logits, batch["y"], weights)
