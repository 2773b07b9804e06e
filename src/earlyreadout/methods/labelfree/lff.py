"""Learning from Failure: a biased network trained with generalized cross-entropy, and the main network
trained on the examples the biased one finds hard."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.models.layers import unwrap
from earlyreadout.params import Param, Uniform


def generalized_ce(logits: torch.Tensor, y: torch.Tensor, q: float) -> torch.Tensor:
    """Per-example generalized cross-entropy in the authors' form, `q * p_y^q * CE` with p_y^q held constant:
    its gradient is q times that of `(1 - p_y^q) / q`, which up-weights examples the network already fits."""
    p_y = F.softmax(logits.float(), dim=1).gather(1, y.unsqueeze(1)).squeeze(1)
    return F.cross_entropy(logits.float(), y, reduction="none") * p_y.detach() ** q * q


def relative_difficulty(ce_biased: torch.Tensor, ce_main: torch.Tensor) -> torch.Tensor:
    """LfF's per-example weights `CE_b / (CE_b + CE_d)`: near 1 where the biased network fails."""
    return ce_biased / (ce_biased + ce_main + 1e-8)


@register("lff")
class LfF(Method):
    """LfF (Nam et al., NeurIPS 2020) as SubpopBench's `LfF` (learning/algorithms.py); deviations below.

    Each step trains a biased copy of the network with generalized cross-entropy (`q`) and the main network
    with cross-entropy weighted by the relative difficulty of each example in this batch. Like the reference
    (and unlike the paper) the difficulty uses this batch's losses, not a per-example moving average.
    Deviation: the biased network starts from the main network's initial weights (the reference draws its own
    initialisation; with pretrained weights the two agree). The reference halves the batch size for LfF; set
    it with `--batch-size`. No group labels are used.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "q": Param(0.7, "exponent of the biased network's generalized cross-entropy (the reference's LfF_q)",
                   low=0.0, high=1.0, open_low=True, search=Uniform(0.05, 0.95)),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.biased = copy.deepcopy(unwrap(network))
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.optimizers["biased"] = self.make_optimizer(self.biased.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        x, y = batch["x"], batch["y"]
        main_logits, biased_logits = self.network(x), self.biased(x)
        ce_main = F.cross_entropy(main_logits.float(), y, reduction="none")
        ce_biased = F.cross_entropy(biased_logits.float(), y, reduction="none")
        weights = relative_difficulty(ce_biased, ce_main).detach()
        loss_main = (ce_main * weights).mean()
        loss_biased = generalized_ce(biased_logits, y, self.hp["q"]).mean()
        main, biased = self.optimizers["main"], self.optimizers["biased"]
        main.zero_grad(set_to_none=True)
        biased.zero_grad(set_to_none=True)
        self.scaler.scale(loss_main + loss_biased).backward()
        distributed.sync_gradients(self.biased.parameters())  # DDP averages only the main network's
        for optimizer in (main, biased):
            self.scaler.step(optimizer)
        self.scaler.update()
        return {"loss": loss_main.item(), "loss_biased": loss_biased.item(),
                "mean_weight": weights.mean().item()}
