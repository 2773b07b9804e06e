"""ReWeight: cross-entropy weighted by the inverse size of each example's group (or class)."""

from __future__ import annotations

import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.rebalance.balance import BinWeighted
from earlyreadout.methods.sample_weights import inverse_size_weights


@register("reweight")
class ReWeight(BinWeighted):
    """Inverse-frequency re-weighting (Japkowicz, 2000; as benchmarked by Yang et al., ICML 2023).

    Reference: SubpopBench `subpopbench/learning/algorithms.py` ReWeight: weight `1 / n_g` per group,
    normalised to mean 1 over the groups (empty groups weigh 0). `balance_by=class` is its `--train_attr no`.
    """

    def bin_weights(self, counts: torch.Tensor) -> torch.Tensor:
        return inverse_size_weights(counts, 1.0)
