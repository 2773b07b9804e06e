"""What the classifier re-training baselines (CRT, ReWeightCRT, VanillaCRT) share: an ERM stage, then the
classifier re-initialised and trained alone on the frozen features.

Both stages run inside `train`: the ERM stage inside the first epoch's `on_epoch_start` (as JTT's stage 1), so
`train.epochs` counts classifier epochs and checkpoint selection sees only re-trained classifiers. A resume
after the first epoch skips the ERM stage (its network is in the checkpoint); one inside it redoes it, drawing
what it drew before. The classifier's steps run outside DDP's forward, their gradients averaged over ranks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout import distributed
from earlyreadout.data.loader import Batch
from earlyreadout.lastlayer.embeddings import classifier_path
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, train_erm
from earlyreadout.models.layers import FeatureTap, call_model, find_module, unwrap
from earlyreadout.params import Param

CRT_HPARAMS: dict[str, Param] = {
    **OPTIMIZER_HPARAMS,
    "erm_epochs": Param(10, "epochs of the ERM stage whose features are kept (the reference's stage 1 is a full "
                        "ERM run; 10 is train.epochs' default)", low=1),
    "classifier": Param("auto", "module path of the classifier to re-train (auto: the last nn.Linear with one "
                        "output per class)"),
}


class ClassifierRetraining(Method):
    """ERM for `erm_epochs`, then only the re-initialised classifier trains, on features of the network in eval
    mode (BatchNorm statistics and dropout frozen too), with `sample_weights` and `head_loss` of a subclass."""

    hparams: ClassVar[dict[str, Param]] = CRT_HPARAMS

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        self.classifier = classifier_path(network, ctx.n_classes, hp["classifier"])
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.optimizers["head"] = self.make_optimizer(self.head.parameters())
        self.erm_done = False

    @property
    def head(self) -> nn.Module:
        """The classifier, inside the network (not a second copy in the method's state)."""
        return find_module(unwrap(self.network), self.classifier)

    def sample_weights(self) -> torch.Tensor | None:
        """Per-example sampling weights of the classifier stage (None: every example once per epoch)."""
        return None

    def head_loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The classifier stage's loss (plain cross-entropy unless a subclass weights it)."""
        return F.cross_entropy(logits, batch["y"])

    def on_epoch_start(self, epoch: int) -> None:
        if not self.erm_done:
            train_erm(self.network, self.optimizers["main"], self.ctx.train_loader, self.hp["erm_epochs"],
                      self.ctx.device)
            self.head.reset_parameters()  # the reference keeps stage 1's features, not its classifier
            self.erm_done = True
        self.ctx.train_loader.set_sample_weights(self.sample_weights())
        self.network.eval()

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        net = unwrap(self.network)
        with torch.no_grad(), FeatureTap(net, [], inputs_of=[self.classifier]) as tap:
            call_model(net, batch["x"])
            features = tap.inputs[self.classifier]
        head = self.head
        loss = self.head_loss(head(features), batch)
        optimizer = self.optimizers["head"]
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        distributed.sync_gradients(head.parameters())  # outside DDP's backward: every rank steps alike
        self.scaler.step(optimizer)
        self.scaler.update()
        return {"loss": loss.item()}

    def extra_state(self) -> dict[str, Any]:
        return {"erm_done": self.erm_done}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.erm_done = bool(state.get("erm_done", False))
