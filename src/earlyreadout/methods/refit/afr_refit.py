"""Automatic Feature Reweighting: ERM on most of train, then its head retrained on the rest, hard examples first."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch

from earlyreadout.data.loader import Batch
from earlyreadout.lastlayer.afr import fit_afr
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.refit.last_layer import (
    LAST_LAYER_HPARAMS,
    LastLayerRetraining,
    head_score,
    tuning_groups,
)
from earlyreadout.params import Choice, IntRange, LogUniform, Param, Uniform
from earlyreadout.readout.weights import afr_weights

GAMMAS = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0)  # the grid searched when gamma is null
PULLS = (0.0, 0.1, 0.2, 0.5)


@register("afr")
class AFR(LastLayerRetraining):
    """AFR (Qiu et al., ICML 2023; reference `afr` repository's last-layer stage): the ERM stage learns from
    train minus a seeded `holdout_fraction`; the head is retrained, full batch, on the held-out part weighted
    `exp(-gamma * p_true)` (class-balanced), pulled towards the ERM head by `pull * ||W - W0||^2`.

    Validation group labels choose gamma and the pull (as in the paper); without them, worst-class accuracy
    does. Deviation: the paper's grid search is over both; here each is searched only when set to null.
    """

    group_labels: ClassVar[str] = "val"
    labels_optional: ClassVar[bool] = True  # without them, worst-class accuracy tunes it
    hparams: ClassVar[dict[str, Param]] = {
        **LAST_LAYER_HPARAMS,
        "holdout_fraction": Param(0.2, "share of train kept out of the ERM stage for reweighting (paper: 0.2)",
                                  low=0.0, high=1.0, open_low=True, open_high=True),
        "reweight_on": Param("holdout", "holdout (train examples the ERM stage never saw, the paper) or val (half "
                             "of validation, for a run trained on all of train)", choices=("holdout", "val")),
        "gamma": Param(None, "weight sharpness (paper: 14 Waterbirds, 1.8 CelebA); null: chosen from "
                       f"{GAMMAS} on validation", kind=float, nullable=True, low=0.0, search=Uniform(0.0, 20.0)),
        "pull": Param(None, "strength of the pull to the ERM head (the paper's lambda); null: chosen from "
                      f"{PULLS} on validation", kind=float, nullable=True, low=0.0, search=Choice(PULLS)),
        "head_steps": Param(300, "full-batch Adam steps of the head", low=1, search=IntRange(50, 1000)),
        "head_lr": Param(1e-2, "Adam learning rate of the head", low=0.0, open_low=True, search=LogUniform(1e-3, 1e-1)),
    }

    def __init__(self, network: torch.nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        n = len(ctx.train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(ctx.seed))
        self.held_out = torch.zeros(n, dtype=torch.bool)
        if hp["reweight_on"] == "holdout":
            self.held_out[order[: max(1, round(hp["holdout_fraction"] * n))]] = True

    def fits(self, batch: Batch) -> torch.Tensor | None:
        """0 on the held-out part; elsewhere 1 / (share kept), so the expected step is ERM's."""
        kept = ~self.held_out.to(batch["idx"].device)[batch["idx"]]
        return kept.float() / (1.0 - self.held_out.float().mean())

    def source_problem(self, source_method: str) -> str | None:
        if self.hp["reweight_on"] == "holdout" and source_method != "afr":
            return ("its ERM stage learnt from all of train, so no held-out part is left to reweight; pass "
                    "method.reweight_on=val")
        return None

    def retrain(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        val = self.embeddings(self.validation("it chooses gamma and the pull"))
        if self.hp["reweight_on"] == "holdout":
            fit = self.embeddings(self.ctx.train)
            fit_idx = self.held_out.nonzero().squeeze(1)
            tune_idx = torch.arange(len(val.y))
        else:
            fit = val
            order = torch.randperm(len(val.y), generator=torch.Generator().manual_seed(self.ctx.seed))
            fit_idx, tune_idx = order[: len(order) // 2], order[len(order) // 2:]
        z, y, logits = fit.z[fit_idx], fit.y[fit_idx], fit.logits[fit_idx]
        w0, b0 = self.head()
        groups = tuning_groups(val)[tune_idx.numpy()]
        gammas = GAMMAS if self.hp["gamma"] is None else (self.hp["gamma"],)
        pulls = PULLS if self.hp["pull"] is None else (self.hp["pull"],)
        scores, best = {}, None
        for gamma, pull in itertools.product(gammas, pulls):
            weights = afr_weights(logits, y, gamma)
            head = fit_afr(z, y, weights, w0, b0, pull, self.hp["head_steps"], self.hp["head_lr"])
            scores[f"gamma={gamma:g},pull={pull:g}"] = score = head_score(*head, val.z[tune_idx],
                                                                          val.y[tune_idx].numpy(), groups)
            if best is None or score > best[0]:
                best = (score, head, gamma, pull)
        _, (weight, bias), gamma, pull = best
        return weight, bias, {"fitted_on": self.hp["reweight_on"], "labels": "val groups (tuning only)",
                              "gamma": gamma, "pull": pull, "reweighted": len(fit_idx),
                              "tuning_worst_group": scores}
