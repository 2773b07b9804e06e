"""VanillaCRT: classifier re-training with plain sampling on the features of an ERM stage."""

from __future__ import annotations

from earlyreadout.methods.base import register
from earlyreadout.methods.refit.classifier_retraining import ClassifierRetraining


@register("vanilla-crt")
class VanillaCRT(ClassifierRetraining):
    """Classifier re-training with instance-balanced sampling (Kang et al., ICLR 2020). No group labels are used.

    Reference: SubpopBench `subpopbench/learning/algorithms.py` VanillaCRT. Deviations as CRT's: the ERM stage
    runs inside this run (`erm_epochs`), and the frozen network is in eval mode.
    """
