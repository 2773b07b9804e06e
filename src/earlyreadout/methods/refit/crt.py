"""CRT: classifier re-training with balanced sampling on the features of an ERM stage."""

from __future__ import annotations

from typing import ClassVar

import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.rebalance.balance import BALANCE_BY, Balanced, train_bins
from earlyreadout.methods.refit.classifier_retraining import CRT_HPARAMS, ClassifierRetraining
from earlyreadout.methods.sample_weights import group_balanced_weights
from earlyreadout.params import Param


@register("crt")
class CRT(ClassifierRetraining, Balanced):
    """Classifier re-training (Kang et al., ICLR 2020): ERM, then the re-initialised classifier trained on frozen
    features with group- (or class-) balanced sampling.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` CRT (`group_balanced` on; stage 1 is a separate
    ERM run whose final model's featurizer is loaded). Deviations: the ERM stage runs inside this run
    (`erm_epochs`), and the frozen network is in eval mode (the reference leaves BatchNorm in train mode, so
    its frozen features follow the balanced batches' statistics). `balance_by=class` is its `--train_attr no`.
    """

    hparams: ClassVar[dict[str, Param]] = {**CRT_HPARAMS, "balance_by": BALANCE_BY}

    def sample_weights(self) -> torch.Tensor | None:
        return group_balanced_weights(*train_bins(self.ctx.train, self.hp["balance_by"]))
