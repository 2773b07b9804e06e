"""Feature Sieve training: ERM plus an early readout whose decodable features the early layers forget."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.hooks import stage_layer
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.params import Choice, LogUniform, Param
from earlyreadout.probe import probe_layer
from earlyreadout.readout import HEAD_FAMILIES
from earlyreadout.sieve import MODES, FeatureSieve


@register("sieve")
class Sieve(Method):
    """Feature Sieve (Tiwari & Shenoy, ICML 2023): a readout on an early layer, and forgetting of what it reads.

    The main network is trained by cross-entropy; a `FeatureSieve` trains the readout head on the detached
    aux-layer feature and, every `forget_every` steps, pushes the readout towards uniform by changing the
    layers up to the aux layer only. The network alone is evaluated and saved; the head, its optimizer and
    the sieve's step counter are checkpointed for resume. Defaults: the setting chosen on validation worst-group
    accuracy by the full-size search of docs/sieve.md (benchmarks/sieve_full_size.py).
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "aux_layer": Param("stage:1", "layer the readout reads: a module path, or stage:N for the model's N-th "
                           "named stage", search=Choice(("stage:1", "stage:2"))),
        "aux_head": Param("mlp", "readout head family", choices=HEAD_FAMILIES, search=Choice(HEAD_FAMILIES)),
        "aux_depth": Param(2, "conv blocks of a conv head", low=0, search=Choice((1, 2))),
        "aux_width": Param(64, "channels / hidden units of a conv or mlp head", low=1,
                           search=Choice((32, 64, 128))),
        "forget_every": Param(1, "a forget step every this many steps; 0 = no forgetting (plain ERM + a readout)",
                              low=0, search=Choice((0, 1, 2, 5, 15))),
        "forget_lr": Param(0.1, "plain-SGD learning rate of the forget step (three-pass)", low=0.0,
                           search=LogUniform(1e-3, 1e-1)),
        "aux_lr": Param(1e-2, "SGD learning rate of the readout head", low=0.0, open_low=True,
                        search=LogUniform(1e-3, 1e-1)),
        "aux_weight_decay": Param(0.0, "weight decay of the readout head", low=0.0),
        "mode": Param("three-pass", "single-pass: one forward/backward of the combined loss; three-pass: "
                      "separate aux and forget passes as the reference code", choices=MODES,
                      search=Choice(MODES)),
        "main_weight": Param(1.0, "a1: weight of the main cross-entropy", low=0.0),
        "aux_weight": Param(1.0, "a2: weight of the readout cross-entropy", low=0.0, open_low=True),
        "forget_weight": Param(1.0, "a3: weight of the forgetting loss (single-pass: the step is lr * a3)",
                               low=0.0, search=LogUniform(0.1, 10.0)),
        "aux_steps": Param(1, "readout-head steps per batch before a forget step (three-pass); more bring the "
                           "head closer to what the layer holds", low=1, search=Choice((1, 3))),
        "forget_steps": Param(1, "forget steps per forget event (three-pass)", low=1, search=Choice((1, 3))),
        "probe": Param(True, "after each epoch, fit fresh probes (converged logistic regressions on the aux "
                       "layer's frozen features of val, two halves cross-fitted) for the label and the spurious "
                       "attribute; logged under measures"),
        "monitor": Param(True, "measure the readout's accuracy right after each forget step (one extra "
                         "forward to the aux layer per forget step)"),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        layer = stage_layer(hp["aux_layer"], ctx.extras.get("model_stages"), "aux_layer")
        self.sieve = FeatureSieve(
            network, layer, ctx.n_classes, ctx.example_input, mode=hp["mode"], head=hp["aux_head"],
            depth=hp["aux_depth"], width=hp["aux_width"], aux_lr=hp["aux_lr"],
            aux_weight_decay=hp["aux_weight_decay"], forget_lr=hp["forget_lr"], forget_every=hp["forget_every"],
            main_weight=hp["main_weight"], aux_weight=hp["aux_weight"], forget_weight=hp["forget_weight"],
            aux_steps=hp["aux_steps"], forget_steps=hp["forget_steps"], monitor=hp["monitor"])
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        self.optimizers["aux"] = self.sieve.aux_optimizer
        self.optimizers["forget"] = self.sieve.forget_optimizer

    def epoch_measures(self, epoch: int) -> dict[str, float]:
        val = self.ctx.val
        if not self.hp["probe"] or val is None:
            return {}
        return probe_layer(self.network, self.sieve.aux_layer, val, self.ctx.device, self.ctx.eval_batch_size)

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        x, y = batch["x"], batch["y"]
        loss = self.sieve.loss(self.network(x), y)
        opt = self.optimizers["main"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stats = self.sieve.step(x, y)
        # forget-step numbers are logged at every step as their latest value, so epoch means stay meaningful
        return {"loss": loss.item(), "aux_loss": stats["aux_loss"], "readout_acc": stats["readout_acc"],
                **self.sieve.last_forget}
