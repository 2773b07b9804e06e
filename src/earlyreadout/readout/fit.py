"""Fit early readouts on a frozen model's features of a dataset, and score datasets with them in one pass.

Cross-fitting (`folds >= 2`) gives every training instance a readout that never trained on it: fold k's
heads learn from the other folds. Without it, a head strong enough to memorise would be right on every
instance it trained on, and its errors would flag nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.loader import BatchLoader
from earlyreadout.errors import UserError
from earlyreadout.models.layers import unwrap
from earlyreadout.readout.heads import EarlyReadout

if TYPE_CHECKING:
    from typing_extensions import Self


def fold_ids(n: int, folds: int, seed: int) -> torch.Tensor:
    """A balanced, seeded assignment of `n` instances to `folds` folds (all zeros for one fold)."""
    if folds < 1:
        raise UserError(f"folds must be >= 1, got {folds}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    ids = torch.empty(n, dtype=torch.long)
    ids[order] = torch.arange(n) % folds
    return ids


class FoldedReadouts:
    """`folds` sets of readout heads on the same layers of one frozen model, all fed by one hooked forward.

    With one fold every instance is scored by heads trained on all of the data; with `folds >= 2`, a
    training instance is scored by the heads of its own fold (trained on the other folds) and any other
    instance by the mean probability of all folds' heads.
    """

    def __init__(self, model: nn.Module, layers: list[str], n_classes: int, example_input: Any, folds: int = 2,
                 head: str = "linear", depth: int = 2, width: int = 128, token_pool: str = "cls", seed: int = 0):
        if folds < 1:
            raise UserError(f"folds must be >= 1, got {folds}")
        self.model, self.layers, self.folds = model, list(dict.fromkeys(layers)), folds
        self.device = next(unwrap(model).parameters()).device
        torch.manual_seed(seed)
        self.readouts: list[EarlyReadout] = []
        try:
            for _ in range(folds):
                self.readouts.append(EarlyReadout(model, self.layers, n_classes, example_input, head, depth, width,
                                                  token_pool))
        except BaseException:
            self.close()
            raise
        self.seed = seed
        self._fitted: tuple[GroupedDataset, dict[str, torch.Tensor]] | None = None  # pooled train features

    def _reduced(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One no-grad forward of the frozen model; each layer's feature after the heads' parameter-free part."""
        with torch.no_grad():
            self.model(x.to(self.device))
            first = self.readouts[0]
            return {p: first.head(p).reduce(f) for p, f in first.features().items()}

    def _batches(self, train: GroupedDataset, epochs: int, batch_size: int
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
        """(idx, y, reduced features) training batches for `epochs` epochs.

        Pooled features (linear / mlp heads) are computed in one pass of the model and reused every
        epoch; conv heads read the full maps, which are recomputed by one forward per batch per epoch.
        """
        loader = BatchLoader(train, batch_size, shuffle=True, seed=self.seed)
        if self.readouts[0].head(self.layers[0]).family == "conv":
            for epoch in range(epochs):
                loader.set_epoch(epoch)
                for batch in loader:
                    yield batch["idx"], batch["y"].to(self.device), self._reduced(batch["x"])
            return
        cache: dict[str, list[torch.Tensor]] = {p: [] for p in self.layers}
        idxs = []
        for batch in BatchLoader(train, batch_size):
            for p, r in self._reduced(batch["x"]).items():
                cache[p].append(r)
            idxs.append(batch["idx"])
        order = torch.cat(idxs)
        features = {p: torch.cat(v)[order.argsort()] for p, v in cache.items()}
        self._fitted = (train, features)
        y = train.y.to(self.device)
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(epochs):
            perm = torch.randperm(len(train), generator=gen)
            for chunk in perm.split(batch_size):
                on_device = chunk.to(self.device)
                yield chunk, y[on_device], {p: f[on_device] for p, f in features.items()}

    def fit(self, train: GroupedDataset, epochs: int = 5, lr: float = 1e-2, batch_size: int = 256,
            weight_decay: float = 0.0) -> list[float]:
        """Train every fold's heads (Adam, cross-entropy) on detached features of `train`; mean loss per epoch."""
        folds = fold_ids(len(train), self.folds, self.seed).to(self.device)
        params = [p for ro in self.readouts for p in ro.heads.parameters()]
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        was_training = self.model.training
        self.model.eval()
        for ro in self.readouts:
            ro.heads.train()
        steps_per_epoch = -(-len(train) // batch_size)
        losses, total, n = [], 0.0, 0
        try:
            for idx, y, reduced in self._batches(train, epochs, batch_size):
                fold = folds[idx.to(self.device)]
                loss = torch.zeros((), device=self.device)
                for k, ro in enumerate(self.readouts):
                    keep = fold != k if self.folds > 1 else torch.ones_like(fold, dtype=torch.bool)
                    if keep.sum() < 2:
                        continue
                    for p, r in reduced.items():
                        loss = loss + F.cross_entropy(ro.head(p).decode(r[keep]), y[keep])
                if loss.requires_grad:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                total, n = total + loss.item() / (len(self.layers) * self.folds), n + 1
                if n == steps_per_epoch:
                    losses.append(total / n)
                    total, n = 0.0, 0
        finally:
            self.model.train(was_training)
            for ro in self.readouts:
                ro.heads.eval()
        return losses

    def score(self, dataset: GroupedDataset, batch_size: int = 512, own_fold: bool = False
              ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({layer: class probabilities}, model logits) for every instance of `dataset`, in dataset order.

        One forward of the model per batch feeds every layer's and every fold's heads. `own_fold=True`
        (for the training split the heads were fitted on) scores each instance with its own fold's heads.
        """
        folds = fold_ids(len(dataset), self.folds, self.seed)
        was_training = self.model.training
        self.model.eval()
        for ro in self.readouts:
            ro.heads.eval()
        probs: dict[str, list[torch.Tensor]] = {p: [] for p in self.layers}
        logits, idxs = [], []
        try:
            with torch.no_grad():
                for batch in BatchLoader(dataset, batch_size):
                    logits.append(self.model(batch["x"].to(self.device)).float().cpu())
                    idxs.append(batch["idx"])
                    features = self.readouts[0].features()
                    for p, f in features.items():
                        each = torch.stack([ro.head(p)(f).float().softmax(1).cpu() for ro in self.readouts])
                        if own_fold and self.folds > 1:
                            probs[p].append(each[folds[batch["idx"]], torch.arange(len(f))])
                        else:
                            probs[p].append(each.mean(0))
        finally:
            self.model.train(was_training)
        inverse = torch.cat(idxs).argsort()
        return {p: torch.cat(v)[inverse] for p, v in probs.items()}, torch.cat(logits)[inverse]

    def train_probs(self, train: GroupedDataset, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """{layer: class probabilities} of every instance of the training set the heads were fitted on, each
        from its own fold's heads. Pooled heads reuse the features cached while fitting (no model forward)."""
        if self._fitted is None or self._fitted[0] is not train:
            return self.score(train, batch_size, own_fold=True)[0]
        folds = fold_ids(len(train), self.folds, self.seed).to(self.device)
        rows = torch.arange(len(train), device=self.device)
        for ro in self.readouts:
            ro.heads.eval()
        with torch.no_grad():
            out = {}
            for p, f in self._fitted[1].items():
                each = torch.stack([ro.head(p).decode(f).float().softmax(1) for ro in self.readouts])
                out[p] = (each[folds, rows] if self.folds > 1 else each[0]).cpu()
        return out

    def close(self) -> None:
        """Remove every readout's hooks from the model."""
        for ro in self.readouts:
            ro.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
