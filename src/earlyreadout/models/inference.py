"""Run a model over a whole dataset in eval mode and collect its logits (and hooked features)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.loader import BatchLoader
from earlyreadout.distributed import all_gather_cat
from earlyreadout.progress import bar


def collect_logits(
    predict: Callable[[Any], torch.Tensor],
    modules: nn.Module,
    dataset: GroupedDataset,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    desc: str = "eval",
    progress: bool | None = None,
) -> torch.Tensor:
    """Logits of `predict` on every example of `dataset`, in dataset order, with `modules` in eval mode.

    Under several processes each rank scores its shard and the results are gathered on every rank.
    """
    was_training = modules.training
    modules.eval()
    loader = BatchLoader(dataset, batch_size * world_size, rank=rank, world_size=world_size)
    outs, idxs = [], []
    try:
        with torch.no_grad():
            for batch in bar(loader, desc=desc, enabled=progress):
                outs.append(predict(batch["x"].to(device)).float().cpu())
                idxs.append(batch["idx"])
    finally:
        modules.train(was_training)
    logits, idx = torch.cat(outs), torch.cat(idxs)
    if world_size > 1:
        logits, idx = all_gather_cat(logits, device), all_gather_cat(idx, device)
    result = torch.empty(len(dataset), logits.shape[1])
    result[idx] = logits
    return result


def flip_rate(logits: torch.Tensor, counterfactual_logits: torch.Tensor) -> float:
    """The share of examples whose predicted class differs between two renderings of them."""
    return float((logits.argmax(1) != counterfactual_logits.argmax(1)).float().mean())


def counterfactual_reliance(predict: Callable[[Any], torch.Tensor], modules: nn.Module, dataset: GroupedDataset,
                            counterfactual: GroupedDataset, batch_size: int = 512,
                            device: torch.device | str = "cpu") -> float:
    """How often `predict`'s class flips when only the spurious attribute of each example of `dataset` is
    changed (`counterfactual`: the same examples re-rendered with another attribute)."""
    return flip_rate(collect_logits(predict, modules, dataset, batch_size, device, progress=False),
                     collect_logits(predict, modules, counterfactual, batch_size, device, progress=False))
