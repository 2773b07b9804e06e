"""Mixup: train on convex combinations of random pairs of examples and of their labels."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.mixing.mixed_training import MixedTraining, Pairs, mixup_pairs
from earlyreadout.params import LogUniform, Param


@register("mixup")
class Mixup(MixedTraining):
    """Mixup (Zhang et al., ICLR 2018) as SubpopBench's `algorithms.Mixup` (learning/algorithms.py, mixup_data
    in utils/misc.py): one Beta(alpha, alpha) weight per batch, partners by a random permutation; token inputs
    mix their classifier inputs (the reference mixes text features too). No group labels are used."""

    hparams: ClassVar[dict[str, Param]] = {
        **MixedTraining.hparams,
        "alpha": Param(0.2, "Beta(alpha, alpha) distribution of the mixing weight (the reference's "
                       "mixup_alpha)", low=0.0, search=LogUniform(0.1, 10.0)),
    }

    def pairs(self, y: torch.Tensor, a: torch.Tensor, rng: np.random.Generator) -> Pairs:
        return mixup_pairs(len(y), self.hp["alpha"], rng)
