"""Deep Feature Reweighting: ERM, then the last layer refitted on group-balanced validation data."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from earlyreadout.lastlayer.dfr import C_GRIDS, dfr
from earlyreadout.methods.base import register
from earlyreadout.methods.refit.last_layer import (
    DFR_HPARAMS,
    LAST_LAYER_HPARAMS,
    LastLayerRetraining,
    as_tensors,
)
from earlyreadout.params import Param


@register("dfr")
class DFR(LastLayerRetraining):
    """DFR (Kirichenko et al., ICLR 2023; reference `dfr_evaluate_spurious.py`): the selected ERM model's
    embeddings of validation, standardised; L1 logistic regression (liblinear) on group-balanced subsamples;
    C chosen by worst-group accuracy on held-out halves; the head is the average of `retrains` refits.

    It trains its head on validation GROUP LABELS (as GroupDRO uses train's): not a label-free method.
    Deviation: the reference tunes C once per dataset by hand-picked grids; both grids are offered here.
    """

    group_labels: ClassVar[str] = "val"
    hparams: ClassVar[dict[str, Param]] = {**LAST_LAYER_HPARAMS, **DFR_HPARAMS}

    def retrain(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        val = self.validation("its head is fitted on validation group labels")
        emb = self.embeddings(val)
        head = dfr(emb.z.numpy(), emb.y.numpy(), emb.g.numpy(), self.ctx.n_classes, C_GRIDS[self.hp["c_grid"]],
                   self.hp["tune_repeats"], self.hp["retrains"], self.ctx.seed)
        return (*as_tensors(head), {"fitted_on": "val", "labels": "val groups", **head.info})
