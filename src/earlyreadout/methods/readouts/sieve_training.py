"""Feature Sieve training: ERM plus an early readout whose decodable features the early layers forget."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from torch import nn

from earlyreadout.data.loader import Batch
from earlyreadout.errors import ConfigError
from earlyreadout.methods.base import OPTIMIZER_HPARAMS, Context, Method, register
from earlyreadout.params import Choice, Param, named_layers
from earlyreadout.readout.probe import probe_layer
from earlyreadout.readout.sieve import SIEVE_PARAMS, FeatureSieve
from earlyreadout.readout.sieve_measures import (
    ForgetRecord,
    contradicts,
    majority_attributes,
    update_norm,
    update_ratio,
)


@register("sieve")
class Sieve(Method):
    """Feature Sieve (Tiwari & Shenoy, ICML 2023): a readout on an early layer, and forgetting of what it reads.

    The main network is trained by cross-entropy; a `FeatureSieve` trains the readout head on the detached
    readout-layer feature and, every `forget_every` steps, pushes the readout towards uniform by changing the
    layers up to the readout layer only. The network alone is evaluated and saved; the head, its optimizer and
    the sieve's step counter are checkpointed for resume. Each epoch logs the forget step's update size over
    the main step's on the early layers, the readout's accuracy before and after forgetting on majority and
    minority examples, and the counterfactual reliance where val can re-render its examples (docs/sieve.md).

    Defaults follow the reference code (google-research `sifer/`): a 2-block conv head after stage 1, one head
    step per batch, never re-initialised, a forget step every 5 steps by plain SGD at forget lr 1e-2 over the
    layers up to the readout layer, head SGD lr 1e-2 with momentum 0.9 and weight decay 1e-4. Where they
    differ, and why (docs/sieve.md, "Fidelity"): the head is 32 channels wide, not 256 (256 costs 13x an ERM
    step of small-cnn); the main lr is 0.027 (the project's search; the reference's 1e-3 fine-tunes a
    pretrained ResNet), so the forget lr is 0.37x the main lr instead of 10x; an iteration runs the main
    step, then the head step, then the forget step (the reference: head, forget, main); batch 64, not 32;
    checkpoints are selected by validation worst-group accuracy (the reference: adjusted accuracy,
    `train.select_by=adjusted`); batch-norm layers train (the reference freezes a pretrained network's).
    """

    hparams: ClassVar[dict[str, Param]] = {
        **OPTIMIZER_HPARAMS,
        "lr": replace(OPTIMIZER_HPARAMS["lr"], default=0.027,
                      help="learning rate of the main network (the sieve's search chose 0.027; ERM's default is 0.01)"),
        "readout_layer": Param("stage:1", "layer the readout reads: a module path, or stage:N for the model's N-th "
                               "named stage; several, comma-separated, put a sieve on each (three-pass mode)",
                               search=Choice(("stage:1", "stage:2")), layer=True),
        **SIEVE_PARAMS,
        "probe": Param(True, "after each epoch, fit fresh probes (converged logistic regressions on the "
                       "readout layer's frozen features of val, two halves cross-fitted) for the label and the "
                       "spurious attribute; logged under measures"),
    }

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__(network, hp, ctx)
        layers = [ctx.layer(layer, key) for key, layer in named_layers(self.hparams, hp)]
        if len(layers) > 1 and hp["mode"] != "three-pass":
            raise ConfigError([(f"method 'sieve': several readout layers ({hp['readout_layer']}) need "
                                "mode=three-pass; single-pass adds one sieve's terms to the main loss")])
        self.sieves = nn.ModuleList([FeatureSieve(network, layer, ctx.n_classes, ctx.example_input,
                                                  **{k: hp[k] for k in SIEVE_PARAMS}) for layer in layers])
        self.optimizers["main"] = self.make_optimizer(network.parameters())
        for i, sieve in enumerate(self.sieves):
            suffix = f":{i}" if i else ""  # the first sieve's keys are those of one-layer runs
            self.optimizers["readout" + suffix] = sieve.readout_optimizer
            self.optimizers["forget" + suffix] = sieve.forget_optimizer
        train = ctx.train
        self.majority = (majority_attributes(train.y, train.a, train.n_classes, train.n_attributes).to(ctx.device)
                         if train.has_attributes else None)
        self.record = ForgetRecord()

    def on_epoch_start(self, epoch: int) -> None:
        self.record = ForgetRecord()

    def epoch_measures(self, epoch: int) -> dict[str, float]:
        """The epoch's forget-step measures (`ForgetRecord`), the counterfactual reliance and, with `probe`,
        fresh probes of each readout layer on val."""
        measures = {**self.record.summary(), **self.counterfactual_measures()}
        val = self.ctx.val
        if not self.hp["probe"] or val is None:
            return measures
        for i, sieve in enumerate(self.sieves):
            probes = probe_layer(self.network, sieve.readout_layer, val, self.ctx.device, self.ctx.eval_batch_size)
            measures.update({(f"{k}@{sieve.readout_layer}" if i else k): v for k, v in probes.items()})
        return measures

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        x, y = batch["x"], batch["y"]
        first = self.sieves[0]
        forgot = first.forgets_now
        measured = forgot and first.mode == "three-pass"  # single-pass: the forgetting is inside the main step
        start = [p.detach().clone() for p in first.early] if measured else []
        loss = first.loss(self.network(x), y)
        self.minimize(loss, self.optimizers["main"])
        main = [p.detach().clone() for p in first.early] if measured else []
        first_stats, *_ = [sieve.step(x, y) for sieve in self.sieves]  # every sieve steps; the first is logged
        if measured:  # the early layers' move by the forget step(s) of this iteration over the main step's
            after = [p.detach() for p in first.early]
            self.record.add_ratio(update_ratio(update_norm(main, after), update_norm(start, main)))
        if forgot and self.majority is not None and bool((batch["a"] >= 0).all()):
            minority = contradicts(y, batch["a"], self.majority)
            for when, correct in first.forget_correct.items():
                self.record.add_correct(when, correct, minority)
        # forget-step numbers are logged at every step as their latest value, so epoch means stay meaningful
        return {"loss": loss.item(), "readout_loss": first_stats["readout_loss"],
                "readout_acc": first_stats["readout_acc"], **first.last_forget}
