"""A frozen distillation teacher loaded from a trained run, with its train-set logits cached by example index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.errors import UserError
from earlyreadout.models.inference import collect_logits


class FrozenTeacher:
    """The selected model of a finished run, in eval mode with every parameter frozen.

    Not an `nn.Module` on purpose: a method holding it never registers it, so `method.train()` cannot put it
    back in training mode and checkpoints do not copy its weights (it is reloaded from `path`).
    `load_run` reads a finished run (the engine's `load_trained`). With `cache`, the logits of every training example are computed once (teacher inputs do not change
    between epochs: no data augmentation happens in the loader) and looked up by the batch's `idx`.
    """

    def __init__(self, path: str | Path, dataset: GroupedDataset, example_input: Any, device: torch.device,
                 load_run: Callable[[str, str], tuple[Any, nn.Module, Any]], cache: bool = True,
                 batch_size: int = 512):
        if not path:
            raise UserError("distillation needs a teacher: set method.teacher=<run directory of a trained model>")
        self.path = str(path)
        cfg, model, _ = load_run(str(path), str(device))
        self.model: nn.Module = model.eval().requires_grad_(False)
        self.description = f"{cfg.model.name} trained with {cfg.method.name} on {cfg.data.name}"
        try:
            with torch.no_grad():
                n_out = self.model(example_input).shape[1]
        except RuntimeError as e:
            raise UserError(f"the teacher in {self.path!r} ({self.description}) cannot read this dataset's "
                            f"inputs ({str(e).splitlines()[0]}); distil on data like the teacher's") from None
        if n_out != dataset.n_classes:
            raise UserError(f"the teacher in {self.path!r} predicts {n_out} classes but {dataset.name} has "
                            f"{dataset.n_classes}; teacher and student must share the label set")
        self.cached: torch.Tensor | None = None
        if cache:
            self.cached = collect_logits(self.model, self.model, dataset, batch_size, device).to(device)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher logits of a training batch: looked up by `idx` when cached, else one frozen forward."""
        if self.cached is not None:
            return self.cached[batch["idx"].to(self.cached.device)]
        with torch.no_grad():
            return self.model(batch["x"]).float()
