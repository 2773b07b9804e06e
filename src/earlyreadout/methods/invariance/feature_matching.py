"""Domain-invariance penalties between the attribute domains of a batch (IRM, MMD, CORAL), as pure functions
of tensors, and the shared shape of the feature-matching methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.loader import Batch
from earlyreadout.lastlayer.embeddings import classifier_path
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method
from earlyreadout.models.layers import FeatureTap
from earlyreadout.params import LogUniform, Param

MMD_GAMMAS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # the reference's bandwidths of the Gaussian kernel


def scale_gradient(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/ds of the mean cross-entropy of `s * logits` at s = 1 (IRM's gradient at the dummy classifier)."""
    scale = torch.ones((), device=logits.device, dtype=logits.dtype, requires_grad=True)
    loss = F.cross_entropy(logits * scale, y)
    return torch.autograd.grad(loss, [scale], create_graph=True)[0]


def irm_penalty(logits: torch.Tensor, y: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """IRMv1's unbiased penalty of one domain: the product of the scale gradients of its two halves (`half`
    True / False); zero when a half is empty."""
    if half.all() or not half.any():
        return logits.sum() * 0.0
    return scale_gradient(logits[half], y[half]) * scale_gradient(logits[~half], y[~half])


def gaussian_mmd(x: torch.Tensor, y: torch.Tensor, gammas: tuple[float, ...] = MMD_GAMMAS) -> torch.Tensor:
    """Squared MMD between samples `x` and `y` under a sum of Gaussian kernels exp(-gamma * |u - v|^2)."""

    def kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        d = (u.unsqueeze(1) - v.unsqueeze(0)).pow(2).sum(-1).clamp_min(1e-30)
        return sum(torch.exp(-g * d) for g in gammas)

    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


def coral_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the means plus that of the (unbiased) covariances of `x` and `y`."""
    mean_x, mean_y = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
    cov_x = (x - mean_x).T @ (x - mean_x) / (len(x) - 1)
    cov_y = (y - mean_y).T @ (y - mean_y) / (len(y) - 1)
    return (mean_x - mean_y).pow(2).mean() + (cov_x - cov_y).pow(2).mean()


def pairwise_penalty(features: torch.Tensor, domain: torch.Tensor,
                     distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`distance` averaged over every pair of domains with at least two examples in the batch (0 if < 2)."""
    values, counts = domain.unique(return_counts=True)
    parts = [features[domain == v] for v in values[counts >= 2]]
    pairs = [distance(parts[i], parts[j]) for i in range(len(parts)) for j in range(i + 1, len(parts))]
    return torch.stack(pairs).mean() if pairs else features.sum() * 0.0


class FeatureMatching(Method):
    """Cross-entropy plus `gamma` times a distance between the classifier inputs of the batch's attribute
    domains, averaged over domain pairs (SubpopBench's AbstractMMD); subclasses name the distance.

    Under DDP the features of the global batch are gathered (`distributed.gather_live`), so the penalty is the
    one-process penalty and two processes train as one.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "gamma": Param(1.0, "weight of the feature-matching penalty (the reference's mmd_gamma)", low=0.0,
                       search=LogUniform(0.1, 10.0)),
        "classifier": Param("auto", "module path of the classifier whose input is matched (auto: the last "
                            "nn.Linear with one output per class)"),
    }
    group_labels: ClassVar[str] = "train"

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.classifier = classifier_path(network, ctx.n_classes, hp["classifier"])

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The distance between two domains' features."""
        raise NotImplementedError

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        with FeatureTap(self.network, [], inputs_of=[self.classifier]) as tap:
            logits = self.network(batch["x"])
            features = tap.inputs[self.classifier].flatten(1).float()
        nll = F.cross_entropy(logits, batch["y"])
        domain = distributed.gather_live(batch["a"])
        with torch.autocast(features.device.type, enabled=False):  # covariances and kernels in fp32
            penalty = pairwise_penalty(distributed.gather_live(features), domain, self.distance)
        self.minimize(nll + self.hp["gamma"] * penalty, self.optimizers["main"])
        return {"loss": nll.item(), "penalty": penalty.item()}
