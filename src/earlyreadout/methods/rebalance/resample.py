"""ReSample: ERM on batches drawn group- (or class-) balanced."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.rebalance.balance import Balanced, train_bins
from earlyreadout.methods.sample_weights import group_balanced_weights


@register("resample")
class ReSample(Balanced):
    """Balanced re-sampling (Japkowicz, 2000; as benchmarked by Yang et al., ICML 2023): examples are drawn with
    replacement in proportion to 1 / (size of their group), so every group is equally likely in a batch.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` ReSample (ERM with `group_balanced` on;
    `train.py` draws with `weights_g`). `balance_by=class` is its `--train_attr no`.
    """

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        ctx.train_loader.set_sample_weights(group_balanced_weights(*train_bins(ctx.train, hp["balance_by"])))

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        loss = F.cross_entropy(self.network(batch["x"]), batch["y"])
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}
