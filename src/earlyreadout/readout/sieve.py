"""Feature Sieve: an early readout learns what an early layer decodes, then the early layers forget it.

`FeatureSieve` works inside any training loop. Per batch, next to the user's main step:
- readout step: cross-entropy of the readout head on the *detached* feature (updates the head only);
- forget step, every `forget_every` steps: `forget_weight * L_f`, the readout's cross-entropy to the
  uniform distribution, whose gradient reaches only the parameters that feed the readout layer (found by
  autograd); the head and the upper layers never change because of it.

Two modes. `three-pass` (the reference code): the readout and forget steps run their own forward/backward
passes (stopped at the readout layer), the forget step with plain SGD at `forget_lr`; `readout_steps` and
`forget_steps` repeat them on the same batch (1 each in the reference). The head steps and the first forget
step share one forward (the head steps move the head only); each later forget step runs its own.
`single-pass` (the paper's Algorithm 1): `loss()` returns `main_weight * CE(main) + readout_weight *
CE(readout) + [k % F == 0] * forget_weight * L_f` from the user's one forward, for one backward; the forget
term's head runs with detached parameters, so its gradient flows only into the early layers, and the user's
optimizer applies it.
Under DDP the head's and the forget step's gradients are averaged over processes (the main backward is
DDP's), so every rank keeps identical weights.

    sieve = FeatureSieve(model, "block1", n_classes=2, example_input=x[:2], mode="single-pass", readout_head="linear")
    loss = sieve.loss(model(x), y); opt.zero_grad(); loss.backward(); opt.step(); sieve.step(x, y)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from earlyreadout import distributed
from earlyreadout.errors import UserError
from earlyreadout.models.layers import parameters_feeding, unwrap
from earlyreadout.params import Choice, LogUniform, Param, checked
from earlyreadout.readout.heads import HEAD_FAMILIES, TOKEN_POOLS, EarlyReadout

MODES = ("three-pass", "single-pass")


def forget_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the uniform distribution, `-(1/C) sum_c log softmax(logits)_c`, batch mean."""
    return -F.log_softmax(logits, dim=1).mean(dim=1).mean()


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


SIEVE_PARAMS: dict[str, Param] = {
    "mode": Param("three-pass", "single-pass: one forward/backward of the combined loss; three-pass: "
                  "separate readout and forget passes as the reference code", choices=MODES,
                  search=Choice(MODES)),
    "readout_head": Param("conv", "readout head family (the reference: conv)", choices=HEAD_FAMILIES,
                          search=Choice(HEAD_FAMILIES)),
    "readout_depth": Param(2, "conv blocks of a conv head", low=0, search=Choice((1, 2))),
    "readout_width": Param(32, "channels / hidden units of a conv or mlp head (the reference: 256 on ResNet-18's "
                           "64-channel stage 1; 32 = small-cnn's block1 channels, at 1.5x ERM's step)", low=1,
                           search=Choice((32, 64, 128, 256))),
    "readout_token_pool": Param("cls", "how a readout on token sequences pools them: cls (position 0) or mean",
                            choices=TOKEN_POOLS),
    "forget_every": Param(5, "a forget step every this many steps; 0 = no forgetting (plain ERM + a readout)",
                          low=0, search=Choice((0, 1, 2, 5, 15))),
    "forget_lr": Param(1e-2, "plain-SGD learning rate of the forget step (three-pass; the reference: 1e-2)",
                       low=0.0, search=LogUniform(1e-4, 1e-1)),
    "readout_lr": Param(1e-2, "SGD learning rate of the readout head (the reference: 1e-2)", low=0.0, open_low=True,
                    search=LogUniform(1e-4, 1e-1)),
    "readout_momentum": Param(0.9, "SGD momentum of the readout head", low=0.0, high=1.0, open_high=True),
    "readout_weight_decay": Param(1e-4, "weight decay of the readout head (the reference: 1e-4)", low=0.0,
                                  search=LogUniform(1e-6, 1e-3)),
    "main_weight": Param(1.0, "a1: weight of the main cross-entropy", low=0.0),
    "readout_weight": Param(1.0, "a2: weight of the readout cross-entropy", low=0.0, open_low=True),
    "forget_weight": Param(1.0, "a3: weight of the forgetting loss (single-pass: the step is lr * a3)", low=0.0,
                           search=LogUniform(0.1, 10.0)),
    "readout_steps": Param(1, "readout-head steps per batch before a forget step (three-pass; the reference takes "
                           "1); more bring the head closer to what the layer holds", low=1, search=Choice((1, 3))),
    "forget_steps": Param(1, "forget steps per forget event (three-pass); the steps of one event follow nearly "
                          "one direction, so n steps move the early layers about as one step at n * forget_lr does, "
                          "for n times the cost", low=1, search=Choice((1, 3))),
    "reinit_every": Param(0, "re-initialise the readout head and its optimizer every this many steps (0 = never, "
                          "as the reference), so forgetting meets heads that have not co-adapted with the layer",
                          low=0, search=Choice((0, 20, 100))),
    "monitor": Param(True, "measure the readout's accuracy right after each forget step (one extra forward to the "
                     "readout layer per forget step; the model's batch-norm statistics are put back after it)"),
}


class FeatureSieve(nn.Module):
    """Feature Sieve (Tiwari & Shenoy, ICML 2023): forget in early layers what an early readout decodes.

    Owns the readout head, its optimizer (SGD momentum), and the forget optimizer (plain SGD over the
    parameters feeding `readout_layer`). Call `loss(logits, y)` on the main output of each batch (it adds the
    sieve terms in single-pass mode) and `step(x, y)` after the main optimizer step. The step counter is a
    buffer, so it is saved with `state_dict()`. Settings are keyword arguments named and defaulted as in
    `SIEVE_PARAMS`, the declaration the `sieve` method, the CLI and the search read too.
    """

    def __init__(self, model: nn.Module, readout_layer: str, n_classes: int, example_input: Any, **settings: Any):
        super().__init__()
        s = checked(SIEVE_PARAMS, settings, "FeatureSieve")
        self.settings = s
        self._model = [model]  # a list, so the model is not registered (nor saved) as a submodule
        self.readout_layer = readout_layer
        self.mode, self.forget_every, self.monitor = s["mode"], s["forget_every"], s["monitor"]
        self.main_weight, self.readout_weight, self.forget_weight = s["main_weight"], s["readout_weight"], s["forget_weight"]
        self.readout_steps, self.forget_steps, self.reinit_every = s["readout_steps"], s["forget_steps"], s["reinit_every"]
        self.readout = EarlyReadout(model, readout_layer, n_classes, example_input, s["readout_head"], s["readout_depth"],
                                    s["readout_width"], s["readout_token_pool"])
        feeding = set(parameters_feeding(model, readout_layer, example_input))
        self.early_names = [n for n, _ in unwrap(model).named_parameters() if n in feeding]
        self.early = [p for n, p in unwrap(model).named_parameters() if n in feeding]
        if not self.early:
            raise UserError(f"no trainable parameter feeds layer {readout_layer!r}; attach the sieve to a later layer")
        self.readout_optimizer = torch.optim.SGD(self.head.parameters(), lr=s["readout_lr"],
                                                 momentum=s["readout_momentum"],
                                                 weight_decay=s["readout_weight_decay"])
        self.forget_optimizer = torch.optim.SGD(self.early, lr=s["forget_lr"], momentum=0.0, weight_decay=0.0)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.last_forget: dict[str, float] = {}
        # on a forget step, which examples of the batch the readout got right before and (monitor) after it
        self.forget_correct: dict[str, torch.Tensor] = {}
        self._pending: dict[str, float] = {}

    @property
    def head(self) -> nn.Module:
        return self.readout.head(self.readout_layer)

    def reset_head(self) -> None:
        """A fresh readout head (new random weights, the same on every process) and a fresh optimizer state."""
        self.readout.reset()
        distributed.broadcast_module(self.head)
        self.readout_optimizer.state.clear()

    @property
    def forgets_now(self) -> bool:
        """Whether the current step (the counter `k`) is a forget step: `F > 0 and k % F == 0`."""
        return self.forget_every > 0 and int(self.steps) % self.forget_every == 0

    def frozen_head(self, feature: torch.Tensor) -> torch.Tensor:
        """Readout logits whose gradient reaches `feature` only: the head's parameters are detached and
        its buffers (batch-norm statistics) are copies, so nothing of the head changes."""
        state = {n: p.detach() for n, p in self.head.named_parameters()}
        state.update({n: b.clone() for n, b in self.head.named_buffers()})
        return functional_call(self.head, state, (feature,))

    def _forward_to_readout_layer(self, x: Any) -> torch.Tensor:
        """The readout layer's feature of `x`, stopping the forward there (the upper layers are not run)."""
        return self.readout.tap.forward_until(x, self.readout_layer)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate for this batch, from the main output of the model's forward.

        three-pass: `main_weight * CE(logits, y)`. single-pass: plus `readout_weight * CE(readout on the
        detached feature)` and, on forget steps, `forget_weight * L_f` restricted to the early layers.
        """
        total = self.main_weight * F.cross_entropy(logits, y)
        if self.mode == "three-pass":
            return total
        feature = self.readout.features(detach=False)[self.readout_layer]
        readout_logits = self.head(feature.detach())
        readout_loss = F.cross_entropy(readout_logits, y)
        total = total + self.readout_weight * readout_loss
        self._pending = {"readout_loss": readout_loss.item(), "readout_acc": accuracy(readout_logits, y)}
        if self.forgets_now:
            forget_logits = self.frozen_head(feature)
            forget = forget_loss(forget_logits)
            total = total + self.forget_weight * forget
            self._pending.update({"forget_loss": forget.item(),
                                  "readout_acc_before_forget": accuracy(forget_logits, y)})
            self.forget_correct = {"before": forget_logits.argmax(1) == y}
        return total

    def step(self, x: Any, y: torch.Tensor) -> dict[str, float]:
        """After the main optimizer step: the readout and forget updates (three-pass) or the head update
        from the shared backward (single-pass); advances the step counter. Returns numbers to log."""
        forgot = self.forgets_now
        if self.mode == "three-pass":
            self.forget_correct = {}
            stats = self._three_pass(x, y, forgot)
        else:
            distributed.sync_gradients(self.head.parameters())
            self.readout_optimizer.step()
            self.readout_optimizer.zero_grad(set_to_none=True)
            stats, self._pending = self._pending, {}
        if forgot and self.monitor:
            stats["readout_acc_after_forget"] = self.monitored_accuracy(x, y)
        if forgot:
            self.last_forget = {k: v for k, v in stats.items() if "forget" in k}
        self.steps += 1
        if self.reinit_every > 0 and int(self.steps) % self.reinit_every == 0:
            self.reset_head()
        return stats

    def monitored_accuracy(self, x: Any, y: torch.Tensor) -> float:
        """The head's accuracy on batch `x` at the current early layers (which examples it gets right is kept
        in `forget_correct["after"]`). The model's buffers (batch-norm running statistics, which a forward in
        train mode updates) are put back, so monitoring leaves the model exactly as it would be without it."""
        buffers = list(unwrap(self._model[0]).buffers())
        kept = [b.clone() for b in buffers]
        with torch.no_grad():
            correct = self.head(self._forward_to_readout_layer(x)).argmax(1) == y
            for b, k in zip(buffers, kept):
                b.copy_(k)
        self.forget_correct["after"] = correct
        return float(correct.float().mean())

    def _three_pass(self, x: Any, y: torch.Tensor, forgot: bool) -> dict[str, float]:
        """`readout_steps` head steps, then on forget steps `forget_steps` forget steps, on batch `x`.

        One forward to the readout layer serves all the head steps and the first forget step: the head steps
        change the head only, so the layer's output stays what it was (the head steps read it detached, the
        forget step through its graph). Each later forget step runs its own forward, the early layers having
        moved.
        """
        with torch.set_grad_enabled(forgot):  # the graph is kept only for the forget step
            feature = self._forward_to_readout_layer(x)
        for _ in range(self.readout_steps):  # several steps bring the head closer to what the layer holds
            stats = self.readout_step(feature.detach(), y)
        if forgot:
            stats.update(self.forget_step(x, y, feature))
            before = stats["readout_acc_before_forget"]
            for _ in range(self.forget_steps - 1):
                stats.update(self.forget_step(x, y))
            stats["readout_acc_before_forget"] = before  # as the first forget step saw it
        return stats

    def readout_step(self, feature: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Three-pass readout update: the head's cross-entropy on `feature`, the detached readout-layer output
        of a batch with labels `y` (head only)."""
        logits = self.head(feature)
        readout_loss = F.cross_entropy(logits, y)
        self.readout_optimizer.zero_grad(set_to_none=True)
        (self.readout_weight * readout_loss).backward()
        distributed.sync_gradients(self.head.parameters())
        self.readout_optimizer.step()
        return {"readout_loss": readout_loss.item(), "readout_acc": accuracy(logits, y)}

    def forget_gradients(self, x: Any, feature: torch.Tensor | None = None
                         ) -> tuple[tuple[torch.Tensor | None, ...], torch.Tensor, torch.Tensor]:
        """The gradient of `forget_weight * L_f` for each early parameter at its current value (None where one
        does not reach the readout), with the frozen head's logits and `L_f`; no parameter changes.

        `feature` is the readout layer's output of `x` at the current weights, with its graph, when the caller
        has already run that forward; without it the forward is run here.
        """
        if feature is None:
            feature = self._forward_to_readout_layer(x)
        logits = self.frozen_head(feature)
        forget = forget_loss(logits)
        return torch.autograd.grad(self.forget_weight * forget, self.early, allow_unused=True), logits, forget

    def forget_step(self, x: Any, y: torch.Tensor, feature: torch.Tensor | None = None) -> dict[str, float]:
        """Three-pass forget update: plain SGD on `forget_weight * L_f` over the early parameters only
        (`feature`: as for `forget_gradients`)."""
        grads, logits, forget = self.forget_gradients(x, feature)
        self.forget_correct.setdefault("before", logits.argmax(1) == y)  # as the event's first step saw it
        saved = [p.grad for p in self.early]  # the user's gradients are left as they were
        for p, g in zip(self.early, grads):
            p.grad = g
        distributed.sync_gradients(self.early)  # outside DDP's backward: every rank takes the mean step
        self.forget_optimizer.step()
        for p, g in zip(self.early, saved):
            p.grad = g
        return {"forget_loss": forget.item(), "readout_acc_before_forget": accuracy(logits, y)}

    def close(self) -> None:
        """Remove the hooks from the model."""
        self.readout.close()
