"""Training on mixed pairs of examples (Mixup, LISA): which pairs to mix, and the shared training step that
mixes inputs (float inputs such as images) or classifier inputs (token ids)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.loader import Batch
from earlyreadout.lastlayer.embeddings import classifier_path
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method
from earlyreadout.models.layers import find_module
from earlyreadout.params import Param

# per mixed example: (first, second, weight of the first)
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def mix(first: torch.Tensor, second: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """`lam * first + (1 - lam) * second`, with one `lam` per row broadcast over the other dimensions."""
    lam = lam.to(first.dtype).view(-1, *([1] * (first.dim() - 1)))
    return lam * first + (1 - lam) * second


def mixup_pairs(n: int, alpha: float, rng: np.random.Generator) -> Pairs:
    """Vanilla mixup's pairs: every example with a random permutation of the batch, one Beta(alpha, alpha)
    weight for the whole batch."""
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    return torch.arange(n), torch.as_tensor(rng.permutation(n)), torch.full((n,), lam, dtype=torch.float64)


def _pair_between(members: torch.Tensor, key: torch.Tensor, rng: np.random.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`members` split by two distinct random values of `key`, paired in order up to the shorter side."""
    values = key[members].unique()
    if len(values) < 2:
        return None
    v1, v2 = values[torch.as_tensor(rng.permutation(len(values))[:2])]
    left, right = members[key[members] == v1], members[key[members] == v2]
    m = min(len(left), len(right))
    return left[:m], right[:m]


def lisa_pairs(y: torch.Tensor, a: torch.Tensor, same_label: bool, alpha: float, rng: np.random.Generator
               ) -> Pairs:
    """LISA's selective pairs: `same_label` mixes examples of one label with different attributes
    (intra-label), otherwise examples of one attribute with different labels (intra-domain); for each label
    (attribute) a random pair of attributes (labels) is drawn, repeated until the batch is full, shuffled and
    cut to the batch size; each pair weighs Beta(alpha, alpha). With nothing to mix, every example is paired
    with itself."""
    n = len(y)
    within, across = (y, a) if same_label else (a, y)
    identity = (torch.arange(n), torch.arange(n), torch.ones(n, dtype=torch.float64))
    if len(across.unique()) < 2:
        return identity
    firsts: list[torch.Tensor] = []
    seconds: list[torch.Tensor] = []
    while sum(map(len, firsts)) < n:
        before = sum(map(len, firsts))
        for value in within.unique():
            pair = _pair_between(torch.nonzero(within == value).flatten(), across, rng)
            if pair is not None:
                firsts.append(pair[0])
                seconds.append(pair[1])
        if sum(map(len, firsts)) == before:
            return identity
    order = torch.as_tensor(rng.permutation(sum(map(len, firsts)))[:n])
    lam = torch.as_tensor(rng.beta(alpha, alpha, size=len(order)), dtype=torch.float64)
    return torch.cat(firsts)[order], torch.cat(seconds)[order], lam


class MixedTraining(Method):
    """Soft-label cross-entropy on mixed pairs of the global batch; subclasses choose the pairs.

    Float inputs (images, features) are mixed as inputs; token ids cannot be, so their classifier inputs are
    mixed instead (as the reference does for text). The batch is put in example-index order and the random
    draws are seeded by (run seed, step), so one process and several draw the same pairs, a resumed run the
    same as an uninterrupted one; under DDP every rank mixes the gathered batch and trains on its share of the
    mixed one.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "classifier": Param("auto", "module path of the classifier whose input is mixed when inputs are "
                            "token ids (auto: the last nn.Linear with one output per class)"),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.classifier = classifier_path(network, ctx.n_classes, hp["classifier"])

    def pairs(self, y: torch.Tensor, a: torch.Tensor, rng: np.random.Generator) -> Pairs:
        """Which examples of the (gathered, index-ordered) batch to mix, and their weights."""
        raise NotImplementedError

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        rng = np.random.default_rng((self.ctx.seed, step))
        order = distributed.gather_live(batch["idx"]).argsort()
        y, a = (distributed.gather_live(batch[k])[order] for k in ("y", "a"))
        # the pairs are drawn on the CPU: their many small, data-dependent steps stall a GPU once per step
        first, second, lam = (t.to(y.device) for t in self.pairs(y.cpu(), a.cpu(), rng))
        onehot = F.one_hot(y, self.ctx.n_classes).double()
        target = mix(onehot[first], onehot[second], lam)
        if batch["x"].is_floating_point():  # mix inputs; each rank trains on its share of the mixed batch
            x = distributed.gather_live(batch["x"])[order]
            share = slice(self.ctx.rank, None, self.ctx.world_size)
            logits = self.network(mix(x[first], x[second], lam)[share])
            target = target[share]
        else:  # mix the classifier's inputs of the whole batch, live on this rank's part
            def mixed(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
                z = distributed.gather_live(inputs[0])[order]
                return (mix(z[first], z[second], lam),)

            handle = find_module(self.network, self.classifier).register_forward_pre_hook(mixed)
            try:
                logits = self.network(batch["x"])
            finally:
                handle.remove()
        loss = F.cross_entropy(logits, target.to(logits.dtype))
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item(), "mixed_fraction": float((first != second).double().mean())}
