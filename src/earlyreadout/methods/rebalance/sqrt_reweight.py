"""SqrtReWeight: cross-entropy weighted by the inverse square root of each example's group (or class) size."""

from __future__ import annotations

import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.rebalance.balance import BinWeighted
from earlyreadout.methods.sample_weights import inverse_size_weights


@register("sqrt-reweight")
class SqrtReWeight(BinWeighted):
    """Square-root inverse-frequency re-weighting (Mahajan et al., ECCV 2018; as benchmarked by Yang et al., 2023).

    Reference: SubpopBench `subpopbench/learning/algorithms.py` SqrtReWeight: weight `1 / sqrt(n_g)` per group,
    normalised to mean 1 over the groups. `balance_by=class` is its `--train_attr no`.
    """

    def bin_weights(self, counts: torch.Tensor) -> torch.Tensor:
        return inverse_size_weights(counts, 0.5)
