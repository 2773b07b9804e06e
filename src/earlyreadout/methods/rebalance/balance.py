"""What the re-balancing baselines share: balancing by groups (attributes known) or by classes (attributes
unknown, SubpopBench's `--train_attr no`, where groups degenerate to classes), and the cross-entropy
weighted per group or class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method
from earlyreadout.methods.rebalance.losses import weighted_cross_entropy
from earlyreadout.params import Param

BALANCE_BY = Param("group", "what is balanced: group (label x attribute; reads train group labels) or class "
                   "(labels only: SubpopBench's attributes-unknown setting)", choices=("group", "class"))


def bins(g: torch.Tensor, y: torch.Tensor, by: str) -> torch.Tensor:
    """Each example's bin: its group index `g` with `by=group`, its label `y` with `by=class`."""
    return g if by == "group" else y


def train_bins(train: GroupedDataset, by: str) -> tuple[torch.Tensor, int]:
    """(each training example's bin, the number of bins: every group, or every class)."""
    return bins(train.g, train.y, by), train.n_groups if by == "group" else train.n_classes


def bin_counts(train: GroupedDataset, by: str) -> torch.Tensor:
    """Training examples per bin, empty bins included."""
    index, n = train_bins(train, by)
    return torch.bincount(index, minlength=n)


class Balanced(Method):
    """A method that balances by groups or by classes (`balance_by`); it reads train group labels only in the
    first case. Two-stage methods mix it in after their stage base."""

    hparams: ClassVar[dict[str, Param]] = {**OPTIMIZER_HPARAMS, "balance_by": BALANCE_BY}
    group_labels: ClassVar[str] = "train"  # under the default balance_by=group

    @classmethod
    def labels_used(cls, hp: Mapping[str, Any]) -> str:
        return "train" if hp["balance_by"] == "group" else "none"


class BinWeighted(Balanced):
    """Cross-entropy with a weight per group (or class), `bin_weights` of the training counts; the loss is
    the batch mean of weighted per-example losses, as SubpopBench's ReWeight."""

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        weights = self.bin_weights(bin_counts(ctx.train, hp["balance_by"])).float()
        self.register_buffer("weights", weights, persistent=False)

    def bin_weights(self, counts: torch.Tensor) -> torch.Tensor:
        """Loss weight of each bin from its training count."""
        raise NotImplementedError

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        weights = self.weights[bins(batch["g"], batch["y"], self.hp["balance_by"])]
        loss = weighted_cross_entropy(self.network(batch["x"]), batch["y"], weights)
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}
