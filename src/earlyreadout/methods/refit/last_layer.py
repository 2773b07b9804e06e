"""The shared base of last-layer retraining: ERM, then the selected model's classifier refitted on
embeddings (DFR, AFR, SELF, readout-dfr). The retraining runs after checkpoint selection, so `train`,
`compare`, `search`, resume and torchrun treat these methods like any other; `earlyreadout retrain` runs
the same retraining on a finished run."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.loader import Batch
from earlyreadout.errors import UserError
from earlyreadout.lastlayer.dfr import C_GRIDS, LinearHead, worst_group_accuracy
from earlyreadout.lastlayer.embeddings import Embeddings, cached_embed, classifier_path, set_classifier
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method
from earlyreadout.models.layers import find_module, resolve_path, unwrap
from earlyreadout.params import IntRange, Param

LAST_LAYER_HPARAMS: dict[str, Param] = {
    **OPTIMIZER_HPARAMS,
    "classifier": Param("auto", "module path of the layer to retrain (auto: the last nn.Linear with one output "
                        "per class)"),
}

# DFR's settings, shared by dfr and readout-dfr
DFR_HPARAMS: dict[str, Param] = {
    "c_grid": Param("waterbirds", "the reference's grid of inverse L1 strengths C: waterbirds (1 .. 0.01) or "
                    "celeba (3 .. 0.003)", choices=tuple(C_GRIDS)),
    "tune_repeats": Param(5, "random halvings of the data that choose C (fit on a balanced half, score the other)",
                          low=1, search=IntRange(1, 10)),
    "retrains": Param(10, "balanced subsamples whose coefficients are averaged (the reference: 10-20)", low=1,
                      search=IntRange(1, 20)),
}


class LastLayerRetraining(Method):
    """ERM updates; `after_selection` replaces the classifier's weights with what `retrain` returns."""

    hparams: ClassVar[dict[str, Param]] = LAST_LAYER_HPARAMS

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.classifier = classifier_path(network, ctx.n_classes, hp["classifier"])

    def fits(self, batch: Batch) -> torch.Tensor | None:
        """Per-example loss weights of the ERM stage for `batch` (None: plain ERM), e.g. 0 on held-out data."""
        return None

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        losses = F.cross_entropy(self.network(batch["x"]), batch["y"], reduction="none")
        weights = self.fits(batch)
        loss = losses.mean() if weights is None else (losses * weights).mean()  # a batch mean, as DDP averages
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}

    def embeddings(self, dataset: GroupedDataset, early_layers: list[str] = (), token_pool: str = "cls"
                   ) -> Embeddings:
        """The current network's embeddings of `dataset` (cached in the run directory), with the pooled
        features of `early_layers` and of every stage the model has (token sequences pooled by `token_pool`),
        so other settings reuse the cache."""
        names = dict(unwrap(self.network).named_modules())
        stages = [s for s in self.ctx.layers.stages if resolve_path(self.network, s) in names]
        layers = list(dict.fromkeys([*stages, *early_layers]))
        return cached_embed(self.ctx.cache_dir, self.network, dataset, self.classifier, layers,
                            batch_size=self.ctx.eval_batch_size, device=self.ctx.device, token_pool=token_pool)

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the classifier now, on the CPU."""
        layer = find_module(unwrap(self.network), self.classifier)
        return layer.weight.detach().float().cpu(), layer.bias.detach().float().cpu()

    def validation(self, role: str) -> GroupedDataset:
        """The validation split, which this method reads (`role` says what for)."""
        if self.ctx.val is None:
            raise UserError(f"{type(self).__name__} reads the validation split ({role}), which this data has none of")
        return self.ctx.val

    def source_problem(self, source_method: str) -> str | None:
        """Why a finished run trained with `source_method` cannot be retrained by this method (None: it can)."""
        return None

    def retrain(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(weight, bias, what was chosen) of the new classifier."""
        raise NotImplementedError

    def after_selection(self) -> dict[str, Any]:
        weight, bias, info = self.retrain()
        set_classifier(unwrap(self.network), self.classifier, weight, bias)
        return {"classifier": self.classifier, **info}


def tuning_groups(emb: Embeddings) -> np.ndarray:
    """Groups that choose among retrained heads: (label, attribute) where the split has attributes, else the
    labels (worst-class accuracy, the "attributes unknown" setting)."""
    return (emb.g if emb.g is not None else emb.y).numpy()


def head_score(weight: torch.Tensor, bias: torch.Tensor, z: torch.Tensor, y: np.ndarray, groups: np.ndarray) -> float:
    """Worst-group accuracy over `groups` of the head (weight, bias) on embeddings `z`."""
    pred = (z @ weight.T + bias).argmax(1).numpy()
    return worst_group_accuracy(pred, y, groups)


def as_tensors(head: LinearHead) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(head.weight, dtype=torch.float32), torch.as_tensor(head.bias, dtype=torch.float32)
