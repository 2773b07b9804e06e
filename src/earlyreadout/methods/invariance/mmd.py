"""MMD: cross-entropy plus the Gaussian-kernel MMD between the classifier inputs of the attribute domains."""

from __future__ import annotations

import torch

from earlyreadout.methods.base import register
from earlyreadout.methods.invariance.feature_matching import FeatureMatching, gaussian_mmd


@register("mmd")
class MMD(FeatureMatching):
    """MMD (Li et al., CVPR 2018) as SubpopBench's `algorithms.MMD` (learning/algorithms.py): a sum of
    Gaussian kernels with bandwidths 1e-3 .. 1e3; domains with fewer than two examples in a batch are left
    out."""

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gaussian_mmd(x, y)
