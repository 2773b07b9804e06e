"""SPARE: cluster each class by an early ERM model's outputs, then sample the clusters towards balance."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.labelfree.infer_then_train import INFERENCE_HPARAMS, InferThenTrain
from earlyreadout.methods.sample_weights import spare_weights
from earlyreadout.params import IntRange, Param, Uniform


def cluster_classwise(outputs: torch.Tensor, y: torch.Tensor, n_clusters: int, seed: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(k-means cluster of each example within its class, silhouette score of each class's clustering).

    A class with too few examples or distinct outputs to cluster is one cluster with silhouette 1.
    """
    clusters = torch.zeros(len(y), dtype=torch.long)
    n_classes = int(y.max()) + 1
    silhouettes = torch.ones(n_classes, dtype=torch.float64)
    for c in range(n_classes):
        members = torch.nonzero(y == c).flatten()
        z = outputs[members].double().numpy()
        k = min(n_clusters, len(np.unique(z, axis=0)))
        if k < 2:
            continue
        labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(z)
        clusters[members] = torch.as_tensor(labels, dtype=torch.long)
        if 2 <= len(np.unique(labels)) < len(z):
            silhouettes[c] = float(silhouette_score(z, labels))
    return clusters, silhouettes


@register("spare")
class SPARE(InferThenTrain):
    """SPARE (Yang et al., 2023, arXiv:2305.18761) as SpuCo's SpareInference + SpareTrain
    (group_inference/spare_inference.py, robust_train/spare_train.py): the softmax outputs of an ERM model
    trained `erm_epochs` are clustered with k-means within each class; classes whose silhouette is below
    `silhouette_threshold` sample their clusters with power `high_power` (others with 1), and the network
    retrains from its initial weights on examples drawn with those weights. Deviation: a class that cannot be
    clustered keeps one cluster. No group labels are used.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **INFERENCE_HPARAMS,
        "clusters": Param(4, "k-means clusters per class (the reference's num_clusters; 2 for CelebA)", low=2,
                          search=IntRange(2, 8)),
        "high_power": Param(2.0, "sampling power of classes whose clusters separate poorly (the reference's "
                            "high_sampling_power)", low=1.0, search=Uniform(1.0, 3.0)),
        "silhouette_threshold": Param(0.9, "classes with a lower silhouette score get `high_power`",
                                      low=-1.0, high=1.0, search=Uniform(0.0, 1.0)),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.weights: torch.Tensor | None = None

    def on_epoch_start(self, epoch: int) -> None:
        if self.weights is None:
            y = self.ctx.train.y
            outputs = self.stage1_logits().softmax(1)
            clusters, silhouettes = cluster_classwise(outputs, y, self.hp["clusters"], self.ctx.seed)
            powers = torch.where(silhouettes < self.hp["silhouette_threshold"], self.hp["high_power"], 1.0)
            self.weights = spare_weights(y, clusters, powers)
        self.ctx.train_loader.set_sample_weights(self.weights)

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        loss = F.cross_entropy(self.network(batch["x"]), batch["y"])
        self.minimize(loss, self.optimizers["main"])
        return {"loss": loss.item()}

    def extra_state(self) -> dict[str, Any]:
        return {"weights": self.weights}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.weights = state.get("weights")
