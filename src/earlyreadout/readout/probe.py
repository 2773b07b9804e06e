"""Fresh probes: how much of an attribute a frozen layer still encodes, measured by a new, converged decoder.

A readout head that is being trained alongside the network tells what *it* decodes; a probe fitted from
scratch to convergence on the frozen features tells what the layer *holds*. Features keep a coarse
spatial grid (a 4x4 average pool of image maps), so information that a global-average-pool head misses
is still found. The probe is an L2-regularised logistic regression fitted by L-BFGS, cross-fitted over
two halves of the data it is given (fit on one half, scored on the other, both ways).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.models.inference import collect_logits
from earlyreadout.models.layers import FeatureTap, unwrap


def grid_pool(feature: torch.Tensor, grid: int = 4) -> torch.Tensor:
    """One vector per example: image maps (N, C, H, W) average-pooled to `grid` x `grid`, token sequences
    (N, L, D) mean-pooled, vectors (N, D) as they are."""
    if feature.dim() == 4:
        return F.adaptive_avg_pool2d(feature, grid).flatten(1)
    if feature.dim() == 3:
        return feature.mean(1)
    if feature.dim() == 2:
        return feature
    raise ValueError(f"cannot pool a feature of shape {tuple(feature.shape)}")


def logistic_probe_accuracy(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor,
                            l2: float = 1e-3, steps: int = 200) -> float:
    """Accuracy on (`x_eval`, `y_eval`) of a multinomial logistic regression fitted to convergence on the
    standardised (`x_fit`, `y_fit`) with penalty `l2 * ||W||^2`."""
    x_fit, x_eval = x_fit.double(), x_eval.double()
    mean, std = x_fit.mean(0), x_fit.std(0).clamp_min(1e-6)
    x_fit, x_eval = (x_fit - mean) / std, (x_eval - mean) / std
    n_classes = int(max(y_fit.max(), y_eval.max())) + 1
    weight = torch.zeros(x_fit.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, tolerance_grad=1e-7,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x_fit @ weight + bias, y_fit) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(((x_eval @ weight + bias).argmax(1) == y_eval).double().mean())


def cross_fitted_probe(features: torch.Tensor, target: torch.Tensor, seed: int = 0, l2: float = 1e-3) -> float:
    """Mean held-out accuracy of two probes, each fitted on one random half and scored on the other."""
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(seed))
    a, b = order[: len(order) // 2], order[len(order) // 2:]
    return 0.5 * (logistic_probe_accuracy(features[a], target[a], features[b], target[b], l2)
                  + logistic_probe_accuracy(features[b], target[b], features[a], target[a], l2))


def layer_features(model: nn.Module, layer: str, dataset: GroupedDataset, device: torch.device | str,
                   batch_size: int = 512) -> torch.Tensor:
    """Grid-pooled features of `layer` for every example of `dataset` (model in eval mode, no gradient)."""
    model = unwrap(model)
    with FeatureTap(model, [layer]) as tap:
        def pooled(x: torch.Tensor) -> torch.Tensor:
            model(x)
            return grid_pool(tap.features[layer].float())

        return collect_logits(pooled, model, dataset, batch_size, device, desc="probe features", progress=False)


def probe_layer(model: nn.Module, layer: str, dataset: GroupedDataset, device: torch.device | str,
                batch_size: int = 512) -> dict[str, Any]:
    """Fresh-probe accuracy of `layer` on `dataset` for the label (`probe_core`) and, where the dataset
    has attribute labels, the spurious attribute (`probe_spurious`). Use a split where the two are
    independent (the generated benchmarks' val and test) so neither probe can lean on the other."""
    features = layer_features(model, layer, dataset, device, batch_size)
    result = {"probe_core": cross_fitted_probe(features, dataset.y)}
    if dataset.a is not None:
        result["probe_spurious"] = cross_fitted_probe(features, dataset.a)
    return result
