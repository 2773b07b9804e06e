"""The interface every training method implements, and the method registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.loader import Batch, BatchLoader
from earlyreadout.distributed import grad_scaler
from earlyreadout.errors import UserError
from earlyreadout.models.inference import counterfactual_reliance
from earlyreadout.models.layers import unwrap
from earlyreadout.models.stages import ModelLayers
from earlyreadout.params import LogUniform, Param
from earlyreadout.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
register = METHODS.register

OPTIMIZER_HPARAMS: dict[str, Param] = {
    "optimizer": Param("sgd", "sgd (with momentum), adam or adamw", choices=("sgd", "adam", "adamw")),
    "lr": Param(0.01, "learning rate of the main network", low=0.0, open_low=True, search=LogUniform(1e-4, 1e-1)),
    "weight_decay": Param(1e-4, "weight decay of the main network", low=0.0, search=LogUniform(1e-6, 1e-3)),
    "momentum": Param(0.9, "SGD momentum", low=0.0, high=1.0, open_high=True),
}


# (run directory, device) -> (its config, its selected model in eval mode, its data splits): how a method
# reads another run (a teacher, an error-set model) without importing the engine that imports the methods
RunLoader = Callable[[str, str], tuple[Any, nn.Module, dict[str, GroupedDataset]]]


@dataclass
class Context:
    """What a method may know about the run beyond its network: data, shapes, device, process group."""

    n_classes: int
    n_groups: int
    train: GroupedDataset
    train_loader: BatchLoader
    example_input: Any
    device: torch.device
    val: GroupedDataset | None = None
    load_run: RunLoader | None = None
    eval_batch_size: int = 512
    rank: int = 0
    world_size: int = 1
    precision: str = "fp32"
    seed: int = 0
    cache_dir: Path | None = None  # where a method may cache what it computes once per model (embeddings)
    layers: ModelLayers = field(default_factory=lambda: ModelLayers("model", None))  # the network's (models/stages.py)

    def layer(self, spec: str, setting: str = "layer") -> str:
        """The module path a layer setting names (`stage:N`: the network's N-th stage), checked on the network."""
        return self.layers.resolve(spec, setting)

    def shuffled_train_loader(self) -> BatchLoader:
        """A loader over all of train (this process's own, not sharded) in a fresh order drawn from the
        global RNG, for a method's inner passes (an ERM stage, readout fitting)."""
        return BatchLoader(self.train, self.train_loader.batch_size, shuffle=True,
                           seed=int(torch.randint(2**31 - 1, ())))


def train_erm(model: nn.Module, optimizer: torch.optim.Optimizer, loader: BatchLoader, epochs: int,
              device: torch.device) -> None:
    """The ERM stage methods share (JTT's identification model, JTT-KD's error-set model): `epochs` of
    plain cross-entropy over `loader`, in train mode."""
    model.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            loss = F.cross_entropy(model(batch["x"].to(device)), batch["y"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def apply_upweights(weights: torch.Tensor, upweight: str, loader: BatchLoader, device: torch.device
                    ) -> torch.Tensor | None:
    """Put per-instance `weights` to work: `sample` makes `loader` draw examples in proportion to them (and
    returns None); `loss` returns them as loss weights divided by their mean, so the expected step is ERM's."""
    if upweight == "sample":
        loader.set_sample_weights(weights)
        return None
    return (weights / weights.mean()).to(device)


def snapshot(network: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the network's state (through DDP wrappers): where JTT-like methods restart from."""
    return {k: v.detach().cpu().clone() for k, v in unwrap(network).state_dict().items()}


def run_loader(ctx: Context) -> RunLoader:
    """The context's way to read another run; a clear error where the context was built without one."""
    if ctx.load_run is None:
        raise UserError("this method reads another run (a teacher or an error-set model), which needs a Context "
                        "with load_run, e.g. earlyreadout.train.runs.load_trained")
    return ctx.load_run


def refuse_lacking_labels(methods: list[tuple[str, type[Method], Mapping[str, Any]]],
                          splits: Mapping[str, GroupedDataset], way_out: str) -> None:
    """Raise one UserError naming each method (name, class, settings) that needs group labels `splits` do not
    have, ending with `way_out` (what to do instead); return when every method finds what it needs."""
    lacking: dict[str, list[str]] = {}
    for name, cls, hp in methods:
        split = cls.lacking_labels(hp, splits)
        if split is not None:
            lacking.setdefault(split, []).append(repr(name))
    if lacking:
        needs = " and ".join(f"method{'s' * (len(names) > 1)} {', '.join(names)} need{'s' * (len(names) == 1)} "
                             f"group labels on {split}" for split, names in lacking.items())
        raise UserError(f"{needs}, which {splits['train'].name} does not have; {way_out}")


class Method(nn.Module):
    """A training method: owns the network and its optimizers; the engine calls only these methods.

    Subclasses declare `hparams` (default, range, search space), implement `update`, and may override
    `on_epoch_start` (stage changes, weight refreshes), `epoch_measures` and `extra_state` / `load_extra_state`.
    """

    hparams: ClassVar[dict[str, Param]] = OPTIMIZER_HPARAMS
    # the group labels a method reads beyond checkpoint selection: "train" (it trains on them), "val" (it fits
    # or tunes on validation's) or "none"; `list` and the report show it beside each method
    group_labels: ClassVar[str] = "none"

    # whether the method still runs on data without the group labels it reads (it tunes on the classes instead)
    labels_optional: ClassVar[bool] = False

    @classmethod
    def labels_used(cls, hp: Mapping[str, Any]) -> str:
        """The group labels the method reads under settings `hp` ("train", "val" or "none"): `group_labels`,
        unless a setting chooses (e.g. balancing by groups or by classes)."""
        return cls.group_labels

    @classmethod
    def lacking_labels(cls, hp: Mapping[str, Any], splits: Mapping[str, GroupedDataset]) -> str | None:
        """The split ("train" or "val") whose group labels the method needs under settings `hp` but `splits`
        do not have; None when the data holds what it needs."""
        split = cls.labels_used(hp)
        if split == "none" or cls.labels_optional or split not in splits or splits[split].has_attributes:
            return None
        return split

    def __init__(self, network: nn.Module, hp: dict[str, Any], ctx: Context):
        super().__init__()
        self.network = network
        self.hp = dict(hp)
        self.ctx = ctx
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scaler = grad_scaler(ctx.device, ctx.precision)
        self._counterfactual_val: GroupedDataset | None = None

    def minimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimizer step on `loss`: zero the gradients, backward and step, through the loss scaler that
        fp16 needs (a pass-through for fp32 and bf16)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def make_optimizer(self, params: Any, lr: float | None = None, weight_decay: float | None = None,
                       momentum: float | None = None, kind: str | None = None) -> torch.optim.Optimizer:
        """An optimizer from the method's settings (each argument overrides the matching hparam)."""
        kind = kind or self.hp["optimizer"]
        lr = self.hp["lr"] if lr is None else lr
        wd = self.hp["weight_decay"] if weight_decay is None else weight_decay
        if kind == "sgd":
            mom = self.hp["momentum"] if momentum is None else momentum
            return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd)
        if kind == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)

    def restart(self, state: dict[str, torch.Tensor]) -> None:
        """Load `state` (a `snapshot`) into the network and give it a fresh main optimizer: the second stage of
        JTT and of the methods that infer groups or flags from a first one."""
        unwrap(self.network).load_state_dict(state)
        self.optimizers["main"] = self.make_optimizer(self.network.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        """One training step on `batch`; returns numbers to log."""
        raise NotImplementedError

    def predict(self, x: Any) -> torch.Tensor:
        """Logits of the main network (what is evaluated and saved)."""
        return self.network(x)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (after a resume too), e.g. to switch stages or refresh weights."""

    def after_selection(self) -> dict[str, Any]:
        """Called once the selected checkpoint is loaded, before the final evaluation. A method that changes
        the network here (last-layer retraining) returns what it did, and the engine saves the changed model."""
        return {}

    def epoch_measures(self, epoch: int) -> dict[str, float]:
        """Numbers measured once after each epoch (e.g. a fresh probe on val), logged under `measures`; by
        default the counterfactual reliance on val where val can re-render its examples."""
        return self.counterfactual_measures()

    def counterfactual_measures(self) -> dict[str, float]:
        """`counterfactual_reliance`: how often the prediction on val flips when only the attribute of an
        example is changed; {} where val cannot re-render its examples with another attribute."""
        val = self.ctx.val
        if val is None or val.counterfactual is None:
            return {}
        if self._counterfactual_val is None:
            self._counterfactual_val = val.counterfactual()
        return {"counterfactual_reliance": counterfactual_reliance(
            self.predict, self.network, val, self._counterfactual_val, self.ctx.eval_batch_size, self.ctx.device)}

    def extra_state(self) -> dict[str, Any]:
        """State outside parameters, buffers and optimizers that a resumed run needs."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` returned."""

    def checkpoint(self) -> dict[str, Any]:
        return {
            "method": self.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "extra": self.extra_state(),
            "scaler": self.scaler.state_dict(),
        }

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        """Restore what `checkpoint` saved; one without this method's optimizers is refused in one line."""
        missing = sorted(set(self.optimizers) - set(state["optimizers"]))
        if missing:
            held = ", ".join(map(repr, sorted(state["optimizers"]))) or "none"
            raise UserError(f"the checkpoint holds no state for optimizer {', '.join(map(repr, missing))} (it holds "
                            f"{held}): it was written by another version of the method; start a new run with "
                            "another --out")
        self.load_state_dict(state["method"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.load_extra_state(state.get("extra", {}))
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
