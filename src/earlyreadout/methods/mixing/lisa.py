"""LISA: selective mixup, within a label across attributes or within an attribute across labels."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.mixing.mixed_training import MixedTraining, Pairs, lisa_pairs
from earlyreadout.params import LogUniform, Param, Uniform


@register("lisa")
class LISA(MixedTraining):
    """LISA (Yao et al., ICML 2022) as SubpopBench's `algorithms.LISA` (learning/algorithms.py): each step
    mixes within labels (probability `p_same_label`) or within attributes, with a Beta(alpha, alpha) weight
    per pair. Deviation: input mixup only (the reference's optional CutMix, off by default there, is not
    offered)."""

    hparams: ClassVar[dict[str, Param]] = {
        **MixedTraining.hparams,
        "alpha": Param(2.0, "Beta(alpha, alpha) distribution of the mixing weights (the reference's "
                       "LISA_alpha)", low=0.0, open_low=True, search=LogUniform(0.1, 10.0)),
        "p_same_label": Param(0.5, "probability that a step mixes within labels across attributes rather "
                              "than within attributes across labels (the reference's LISA_p_sel)", low=0.0,
                              high=1.0, search=Uniform(0.0, 1.0)),
    }
    group_labels: ClassVar[str] = "train"

    def pairs(self, y: torch.Tensor, a: torch.Tensor, rng: np.random.Generator) -> Pairs:
        same_label = bool(rng.random() <= self.hp["p_same_label"])
        return lisa_pairs(y, a, same_label, self.hp["alpha"], rng)
