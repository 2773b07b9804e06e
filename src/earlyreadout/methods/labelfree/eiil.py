"""EIIL: infer the two environments that most violate invariance for an ERM model, then train Group DRO on
(label, environment) groups."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.methods.base import Context, register
from earlyreadout.methods.labelfree.infer_then_train import INFERENCE_HPARAMS, InferThenTrain
from earlyreadout.methods.robust.group_weights import group_dro_loss
from earlyreadout.methods.sample_weights import group_balanced_weights
from earlyreadout.params import IntRange, LogUniform, Param


def scale_gradients(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example, d/ds of the cross-entropy of `s * logits` at s = 1: `<z, softmax(z)> - z_y`."""
    return (logits * logits.softmax(1)).sum(1) - logits.gather(1, y.unsqueeze(1)).squeeze(1)


def eiil_objective(r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The negated mean IRMv1 penalty of the soft environments sigmoid(w) and 1 - sigmoid(w), given each
    example's scale gradient `r` (each environment's risk is a mean over all examples, as the reference's)."""
    p = w.sigmoid()
    return -((r * p).mean() ** 2 + (r * (1 - p)).mean() ** 2) / 2


def infer_environments(logits: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int
                       ) -> torch.Tensor:
    """Each example's environment (0 or 1): the soft assignment minimising `eiil_objective` by Adam from a
    seeded normal start, thresholded at 1/2."""
    r = scale_gradients(logits.double(), y)
    start = torch.Generator().manual_seed(seed)
    w = torch.randn(len(y), generator=start, dtype=torch.float64).requires_grad_()
    optimizer = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        eiil_objective(r, w).backward()
        optimizer.step()
    return (w.detach().sigmoid() > 0.5).long()


@register("eiil")
class EIIL(InferThenTrain):
    """EIIL (Creager et al., ICML 2021) as SpuCo's EIIL + GroupDRO (group_inference/eiil.py,
    robust_train/group_dro.py, quickstart/waterbirds/waterbirds_eiil.py): environments inferred from an ERM
    model trained `erm_epochs` (`steps` Adam steps at `assign_lr` on the assignment), then Group DRO (`eta`) with
    group-balanced sampling. Deviation: the groups are (label, environment) as in the paper's Group DRO
    experiments; SpuCo's partition keys on the environment only. No group labels are used.
    """

    hparams: ClassVar[dict[str, Param]] = {
        **INFERENCE_HPARAMS,
        "steps": Param(20_000, "Adam steps of the environment assignment (the reference's eiil_num_steps)",
                       low=1, search=IntRange(1000, 20_000)),
        "assign_lr": Param(0.01, "learning rate of the environment assignment (the reference's eiil_lr)",
                           low=0.0, open_low=True, search=LogUniform(1e-3, 1e-1)),
        "eta": Param(0.01, "step size of Group DRO's group weights (the reference's group_weight_lr)",
                     low=0.0, open_low=True, search=LogUniform(1e-3, 1.0)),
        "balanced_sampling": Param(True, "draw every inferred group equally often in expectation, as the "
                                   "reference's Group DRO"),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.n_inferred = 2 * ctx.n_classes
        self.register_buffer("q", torch.full((self.n_inferred,), 1.0 / self.n_inferred, dtype=torch.float64))
        self.groups: torch.Tensor | None = None

    def on_epoch_start(self, epoch: int) -> None:
        if self.groups is None:
            y = self.ctx.train.y
            env = infer_environments(self.stage1_logits(), y, self.hp["steps"], self.hp["assign_lr"],
                                     self.ctx.seed)
            self.groups = y * 2 + env
        if self.hp["balanced_sampling"]:
            self.ctx.train_loader.set_sample_weights(group_balanced_weights(self.groups, self.n_inferred))

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        losses = F.cross_entropy(self.network(batch["x"]), batch["y"], reduction="none")
        g = self.groups.to(losses.device)[batch["idx"].to(losses.device)]
        loss, stats = group_dro_loss(losses, g, self.q, self.hp["eta"], self.ctx.world_size)
        self.minimize(loss, self.optimizers["main"])
        return {**stats, "environment_1": float((self.groups % 2).double().mean())}

    def extra_state(self) -> dict[str, Any]:
        return {"groups": self.groups}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.groups = state.get("groups")
