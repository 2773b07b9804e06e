"""Label-free instance weights from cross-fitted early readouts on the network being trained.

A readout on a detached early layer decodes the simple (often spurious) feature first, so its confident
errors on the training set mark the instances that feature contradicts. Cross-fitting scores each
instance with heads that never trained on it, so a head strong enough to memorise cannot hide them.
`ReadoutReweighter` is usable in any training loop:

    reweighter = ReadoutReweighter(model, "block1", n_classes=2, example_input=x[:2])
    weights = reweighter.weights(train_set)   # one weight per training instance, >= 1
    loss = (F.cross_entropy(model(x), y, reduction="none") * weights[idx]).mean()
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.models.layers import find_module
from earlyreadout.params import Choice, IntRange, LogUniform, Param, Uniform, checked
from earlyreadout.readout.fit import FoldedReadouts
from earlyreadout.readout.heads import READOUT_HEAD_PARAMS
from earlyreadout.readout.scores import WEIGHTINGS, confident_error, flag_weights
from earlyreadout.readout.weights import ERROR_WEIGHT_PARAMS

READOUT_REWEIGHT_PARAMS: dict[str, Param] = {
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


class ReadoutReweighter(nn.Module):
    """Cross-fitted early-readout weights (teacher-free DeDiER / JTT): fresh heads, fit, score, weigh.

    Settings are those of `READOUT_REWEIGHT_PARAMS` (keyword arguments, each defaulting to its declared
    value). Every call to `weights` fits new heads on the model as it is now (eval mode, no gradient to the
    model) and removes them again, so the model is left exactly as it was.
    """

    def __init__(self, model: nn.Module, layer: str, n_classes: int, example_input: Any, **settings: Any):
        super().__init__()
        values = checked(READOUT_REWEIGHT_PARAMS, settings, "ReadoutReweighter")
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
        errors = probs.argmax(1) != y
        self.last = {"readout_error_fraction": float(errors.float().mean()),
                     "readout_confident_error": float(confident_error(probs, y).mean()),
                     "max_weight": float(w.max())}
        return w
