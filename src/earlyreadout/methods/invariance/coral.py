"""Deep CORAL: cross-entropy plus the distance between the feature means and covariances of the domains."""

from __future__ import annotations

import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.invariance.feature_matching import FeatureMatching, coral_distance


@register("coral")
class CORAL(FeatureMatching):
    """Deep CORAL (Sun & Saenko, ECCV 2016) as SubpopBench's `algorithms.CORAL` (learning/algorithms.py);
    domains with fewer than two examples in a batch are left out (the reference divides by zero)."""

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return coral_distance(x, y)
