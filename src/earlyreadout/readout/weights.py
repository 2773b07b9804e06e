"""DeDiER instance weights from a live early readout on a student layer, usable in any training loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.params import Param, Uniform, checked
from earlyreadout.readout.heads import READOUT_HEAD_PARAMS, EarlyReadout
from earlyreadout.readout.scores import error_weights

ERROR_WEIGHT_PARAMS: dict[str, Param] = {
    "alpha": Param(0.05, "exponent on the readout margin in exp(beta * m^alpha)", low=0.0, open_low=True),
    "beta": Param(4.0, "scale in exp(beta * m^alpha); 0 = no up-weighting", low=0.0, search=Uniform(0.5, 5.0)),
}
READOUT_WEIGHTER_PARAMS: dict[str, Param] = {**READOUT_HEAD_PARAMS, **ERROR_WEIGHT_PARAMS}
RENAMED = {k: f"readout_{k}" for k in ("head", "depth", "width", "lr", "token_pool")}  # the first release's names


class ReadoutWeighter(nn.Module):
    """A readout on `layer` of `model`, trained on detached features; weights `exp(beta * m^alpha)` on its errors.

    It reads the feature the model's last forward pass recorded, so a training loop pays no extra forward:

        weighter = ReadoutWeighter(student, "block1", n_classes=2, example_input=x[:2])
        logits = student(x)
        w = weighter.weights(y)      # from the readout before it sees this batch
        weighter.update(y)           # one readout step; the student is never changed by it

    The student's layers keep learning from the student's own loss: the readout only reads them. Settings
    are keyword arguments named and defaulted as in `READOUT_WEIGHTER_PARAMS`, which DeDiER declares too.
    """

    def __init__(self, model: nn.Module, layer: str, n_classes: int, example_input: Any, **settings: Any):
        super().__init__()
        s = checked(READOUT_WEIGHTER_PARAMS, settings, "ReadoutWeighter", RENAMED)
        self.layer, self.alpha, self.beta, self.lr = layer, s["alpha"], s["beta"], s["readout_lr"]
        self.readout = EarlyReadout(model, layer, n_classes, example_input, head=s["readout_head"],
                                    depth=s["readout_depth"], width=s["readout_width"], token_pool=s["readout_token_pool"])
        self.optimizer = self._new_optimizer()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.readout.heads.parameters(), lr=self.lr)

    def reset(self) -> None:
        """Re-initialise the readout head and its optimizer."""
        self.readout.reset()
        self.optimizer = self._new_optimizer()

    def logits(self) -> torch.Tensor:
        """Readout logits from the feature of the model's last forward (detached)."""
        return self.readout.logits()[self.layer]

    def weights(self, y: torch.Tensor) -> torch.Tensor:
        """Per-instance weights of the last forward's batch: `exp(beta * m^alpha)` where the readout errs, else 1."""
        with torch.no_grad():
            z = self.logits()
            return error_weights(z.float().softmax(1), y.to(z.device), self.alpha, self.beta)

    def update(self, y: torch.Tensor) -> float:
        """One optimizer step of the readout's cross-entropy on the last forward's (detached) feature.

        Under several processes the readout's gradients are averaged, so its weights stay in sync.
        """
        z = self.logits()
        loss = F.cross_entropy(z, y.to(z.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.sync_gradients(self.readout.heads.parameters())  # identical readouts on every rank
        self.optimizer.step()
        return loss.item()

    def fit(self, forward: Callable[[Any], Any], batches: Iterable[dict[str, torch.Tensor]]) -> float:
        """Train the readout over `batches`, running `forward(x)` (e.g. the model in eval mode) for features.

        Returns the mean readout loss.
        """
        total, n = 0.0, 0
        for batch in batches:
            with torch.no_grad():
                forward(batch["x"])
            total += self.update(batch["y"])
            n += 1
        return total / max(n, 1)

    def close(self) -> None:
        """Remove the readout's hook from the model."""
        self.readout.close()
