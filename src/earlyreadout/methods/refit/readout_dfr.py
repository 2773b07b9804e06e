"""Readout-flagged last-layer retraining: DFR with early-readout pseudo-groups in place of group labels."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from earlyreadout.lastlayer.dfr import C_GRIDS, dfr
from earlyreadout.lastlayer.pseudo_groups import (
    PSEUDO_GROUPS,
    crossfit_probabilities,
    pseudo_groups,
    readout_probabilities,
)
from earlyreadout.methods.base import register
from earlyreadout.methods.refit.last_layer import (
    DFR_HPARAMS,
    LAST_LAYER_HPARAMS,
    LastLayerRetraining,
    as_tensors,
)
from earlyreadout.params import Choice, IntRange, LogUniform, Param
from earlyreadout.readout.heads import TOKEN_POOLS

READOUT_DFR_HPARAMS: dict[str, Param] = {
    "readout_layer": Param("stage:1", "layer whose pooled features the readout reads (module path or stage:N)",
                           layer=True, search=Choice(("stage:1", "stage:2", "stage:3"))),
    "readout_token_pool": Param("mean", "how the readout pools token sequences: mean (a bag of the layer's "
                                "tokens) or cls (position 0, which before any attention layer is the same "
                                "token for every input)", choices=TOKEN_POOLS),
    "readout_c": Param(0.01, "inverse L2 strength of the logistic readout (0.01 and stage:1 had the best mean "
                       "validation worst-group over the built-in benchmarks)", low=0.0, open_low=True,
                       search=LogUniform(1e-3, 1e2)),
    "pseudo_groups": Param("predicted", "predicted: (label, readout's class), which keeps several minorities of "
                           "a class apart; flagged: (label, readout wrong)", choices=PSEUDO_GROUPS,
                           search=Choice(PSEUDO_GROUPS)),
    "min_group_size": Param(10, "pseudo-groups smaller than this join their label's agreeing group", low=1,
                            search=IntRange(1, 50)),
    "fit_on": Param("val", "where the head is refitted: val (the readout, fitted on train, flags it) or train "
                    "(cross-fitted readouts flag it; for data without a validation split to spare)",
                    choices=("val", "train")),
    "folds": Param(2, "cross-fitting folds of the readout when fit_on=train", low=2),
}


@register("readout-dfr")
class ReadoutDFR(LastLayerRetraining):
    """Early readouts stand in for group labels in DFR (new in this project). A logistic readout on the
    selected ERM model's pooled early-layer features learns the label from train, where the shortcut
    agrees with it; on the split it flags, (label, readout's prediction) forms pseudo-groups, which balance
    DFR's subsamples and choose its C. No group labels are read on any split."""

    hparams: ClassVar[dict[str, Param]] = {**LAST_LAYER_HPARAMS, **DFR_HPARAMS, **READOUT_DFR_HPARAMS}

    def retrain(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        hp, n = self.hp, self.ctx.n_classes
        layer = self.ctx.layer(hp["readout_layer"], "readout_layer")
        pooling = hp["readout_token_pool"]
        train = self.embeddings(self.ctx.train, [layer], pooling)
        train_x, train_y = train.early[layer].numpy(), train.y.numpy()
        if hp["fit_on"] == "val":
            target = self.embeddings(self.validation("the readout flags it and the head is fitted on it"), [layer],
                                     pooling)
            probs = readout_probabilities(train_x, train_y, target.early[layer].numpy(), hp["readout_c"])
        else:
            target = train
            probs = crossfit_probabilities(train_x, train_y, hp["folds"], self.ctx.seed, hp["readout_c"])
        y = target.y.numpy()
        groups = pseudo_groups(probs, y, n, hp["pseudo_groups"], hp["min_group_size"])
        head = dfr(target.z.numpy(), y, groups, n, C_GRIDS[hp["c_grid"]], hp["tune_repeats"], hp["retrains"],
                   self.ctx.seed)
        info = {"fitted_on": hp["fit_on"], "labels": "none", "readout_layer": layer,
                "flagged_fraction": float((probs.argmax(1) != y).mean()),
                "pseudo_group_sizes": {int(k): int(c) for k, c in zip(*np.unique(groups, return_counts=True))},
                **head.info}
        if target.g is not None and self.ctx.train.has_attributes:  # for the record only, never used to fit
            info.update(flag_quality(probs.argmax(1) != y, target.g.numpy(), self.ctx.train.group_counts().numpy(),
                                     self.ctx.train.n_attributes))
        return (*as_tensors(head), info)


def flag_quality(flagged: np.ndarray, g: np.ndarray, train_counts: np.ndarray, n_attributes: int) -> dict[str, float]:
    """Precision and recall of the readout's flags against the minority groups: those smaller in train than
    the largest group of their label."""
    largest = train_counts.reshape(-1, n_attributes).max(1, keepdims=True)
    minority_group = (train_counts.reshape(-1, n_attributes) < largest).reshape(-1)
    minority = minority_group[g]
    hits = float((flagged & minority).sum())
    return {"flag_precision": hits / max(float(flagged.sum()), 1.0),
            "flag_recall": hits / max(float(minority.sum()), 1.0)}
