"""Class-balanced loss: cross-entropy weighted by the inverse effective number of each group (or class)."""

from __future__ import annotations

from typing import ClassVar

import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.rebalance.balance import BinWeighted
from earlyreadout.methods.sample_weights import effective_number_weights
from earlyreadout.params import Choice, Param


@register("cbloss")
class CBLoss(BinWeighted):
    """Class-balanced loss (Cui et al., CVPR 2019): weights `(1 - beta) / (1 - beta^n)`, normalised to mean 1.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` CBLoss, per group (`balance_by=class`: per
    class, its `--train_attr no`). Deviation: beta is searched on the grid 1 - 10^-k, k = 2..5; the reference
    draws 1 - 10^U(-5, -2), a transformed draw that Optuna could not store as the setting's value.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **BinWeighted.hparams,
        "beta": Param(0.9999, "beta of the effective number (1 - beta^n) / (1 - beta); 0: plain cross-entropy, "
                      "towards 1: inverse frequency", low=0.0, high=1.0, open_high=True,
                      search=Choice((0.99, 0.999, 0.9999, 0.99999))),
    }

    def bin_weights(self, counts: torch.Tensor) -> torch.Tensor:
        return effective_number_weights(counts, self.hp["beta"])
