"""Instance weights from early readouts on the network being trained, usable in any training loop.

A readout on a detached early layer decodes the simple (often spurious) feature first, so its confident
errors mark the instances that feature contradicts. `LiveReadoutWeighter` trains one readout alongside the
model, a step per batch, and weighs each batch from the feature its forward recorded (DeDiER's online
refresh). `CrossFitReadoutWeighter` fits fresh heads over the whole train set with cross-fitting, so each
instance is scored by heads that never trained on it and a head strong enough to memorise cannot hide it:

    weighter = CrossFitReadoutWeighter(model, "block1", n_classes=2, example_input=x[:2])
    weights = weighter.weights(train_set)   # one weight per training instance, >= 1
    loss = (F.cross_entropy(model(x), y, reduction="none") * weights[idx]).mean()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.base import GroupedDataset
from earlyreadout.models.layers import find_module
from earlyreadout.params import Choice, IntRange, LogUniform, Param, Uniform, checked
from earlyreadout.readout.fit import FoldedReadouts
from earlyreadout.readout.heads import READOUT_HEAD_PARAMS, EarlyReadout
from earlyreadout.readout.scores import confident_error, misclassified
from earlyreadout.readout.weights import ERROR_WEIGHT_PARAMS, WEIGHTINGS, error_weights, flag_weights

LIVE_WEIGHTER_PARAMS: dict[str, Param] = {**READOUT_HEAD_PARAMS, **ERROR_WEIGHT_PARAMS}

CROSS_FIT_WEIGHTER_PARAMS: dict[str, Param] = {
    **READOUT_HEAD_PARAMS,
    "readout_head": replace(READOUT_HEAD_PARAMS["readout_head"], search=Choice(("linear", "mlp"))),
    "readout_epochs": Param(5, "passes over the train set that fit the readout heads at each scoring", low=1,
                            search=IntRange(1, 10)),
    "folds": Param(2, "cross-fitting folds: each instance is scored by heads that never trained on it "
                   "(1 = no cross-fitting)", low=1, search=Choice((2, 3, 5))),
    "weighting": Param("exp", "exp: DeDiER's exp(beta * m^alpha) on the readout's errors (m: its margin); "
                       "lambda: lambda_up on every error", choices=WEIGHTINGS, search=Choice(WEIGHTINGS)),
    "alpha": replace(ERROR_WEIGHT_PARAMS["alpha"], search=LogUniform(0.02, 1.0)),
    "beta": replace(ERROR_WEIGHT_PARAMS["beta"], search=Uniform(1.0, 5.0)),
    "lambda_up": Param(50.0, "weight of the readout's errors when weighting=lambda", low=1.0,
                       search=LogUniform(5.0, 200.0)),
}


class LiveReadoutWeighter(nn.Module):
    """A readout on `layer` of `model`, trained on detached features; weights `exp(beta * m^alpha)` on its errors.

    It reads the feature the model's last forward pass recorded, so a training loop pays no extra forward:

        weighter = LiveReadoutWeighter(student, "block1", n_classes=2, example_input=x[:2])
        logits = student(x)
        w = weighter.weights(y)      # from the readout before it sees this batch
        weighter.update(y)           # one readout step; the student is never changed by it

    The student's layers keep learning from the student's own loss: the readout only reads them. Settings
    are keyword arguments named and defaulted as in `LIVE_WEIGHTER_PARAMS`, which DeDiER declares too.
    """

    def __init__(self, model: nn.Module, layer: str, n_classes: int, example_input: Any, **settings: Any):
        super().__init__()
        s = checked(LIVE_WEIGHTER_PARAMS, settings, "LiveReadoutWeighter")
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


class CrossFitReadoutWeighter(nn.Module):
    """Cross-fitted early-readout weights (teacher-free DeDiER / JTT): fresh heads, fit, score, weigh.

    Settings are those of `CROSS_FIT_WEIGHTER_PARAMS` (keyword arguments, each defaulting to its declared
    value). Every call to `weights` fits new heads on the model as it is now (eval mode, no gradient to the
    model) and removes them again, so the model is left exactly as it was.
    """

    def __init__(self, model: nn.Module, layer: str, n_classes: int, example_input: Any, **settings: Any):
        super().__init__()
        values = checked(CROSS_FIT_WEIGHTER_PARAMS, settings, "CrossFitReadoutWeighter")
        find_module(model, layer)  # an unknown layer is an error now, not at the first scoring
        self._model = [model]  # a list, so the model is not registered (nor saved) as a submodule
        self.layer, self.n_classes, self.example_input = layer, n_classes, example_input
        self.settings = values
        self.last: dict[str, float] = {}

    def scores(self, train: GroupedDataset, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
        """Class probabilities of the cross-fitted readout for every instance of `train`, in dataset order."""
        s = self.settings
        with torch.random.fork_rng(), FoldedReadouts(
                self._model[0], [self.layer], self.n_classes, self.example_input, folds=s["folds"],
                head=s["readout_head"], depth=s["readout_depth"], width=s["readout_width"],
                token_pool=s["readout_token_pool"], seed=seed) as readouts:
            readouts.fit(train, epochs=s["readout_epochs"], lr=s["readout_lr"], batch_size=batch_size)
            return readouts.train_probs(train, batch_size=max(batch_size, 512))[self.layer]

    def weights(self, train: GroupedDataset, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
        """One weight per instance of `train`: the readout's errors up-weighted, the rest 1."""
        s = self.settings
        probs = self.scores(train, seed, batch_size)
        y = train.y
        w = flag_weights(probs, y, s["weighting"], s["alpha"], s["beta"], s["lambda_up"])
        errors = misclassified(probs, y)
        self.last = {"readout_error_fraction": float(errors.float().mean()),
                     "readout_confident_error": float(confident_error(probs, y).mean()),
                     "max_weight": float(w.max())}
        return w
