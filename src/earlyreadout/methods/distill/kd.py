"""Knowledge distillation from a frozen teacher run, with uniform instance weights."""

from __future__ import annotations

from earlyreadout.methods.base import register
from earlyreadout.methods.distill.distillation import Distillation


@register("kd")
class KD(Distillation):
    """Distillation (Hinton et al. 2015): `a T^2 KL(teacher_T || student_T) + (1 - a) CE`, teacher frozen."""
