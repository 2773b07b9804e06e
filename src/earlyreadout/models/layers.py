"""Layers by module path: lookup with suggestions, forward-hook taps, and the parameters a layer depends on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from earlyreadout.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from typing_extensions import Self


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DistributedDataParallel / DataParallel wrappers and `torch.compile`."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # what torch.compile wraps
            model = model._orig_mod
        else:
            return model


def resolve_path(model: nn.Module, path: str) -> str:
    """The `named_modules()` name `path` refers to: itself, or `prefix + path` for a prefix in the model's
    `path_prefixes` (adapters declare them so wrapped layers keep their natural names, e.g. the HF
    adapter resolves `encoder.layer.1` to `hf.bert.encoder.layer.1`)."""
    model = unwrap(model)
    path = path.removeprefix("module.")
    modules = dict(model.named_modules())
    if path in modules and path:
        return path
    for prefix in getattr(model, "path_prefixes", ()):
        if prefix + path in modules:
            return prefix + path
    return path


def unknown_layer(path: str, names: list[str], prefixes: Sequence[str], model_name: str) -> str | None:
    """The error line for a layer path that names none of a model's modules (`names`, reached directly or
    through one of its `path_prefixes`), listing the closest valid ones; None when the path names one."""
    path = path.removeprefix("module.")
    if path and (path in names or any(prefix + path in names for prefix in prefixes)):
        return None
    names = [n for n in names if n]
    short = [n.removeprefix(p) for p in prefixes for n in names if n.startswith(p)]
    return (f"no layer {path!r} in {model_name}{did_you_mean(path, short + names, n=5)}; "
            f"top-level layers: {', '.join(n for n in names if '.' not in n)}")


def find_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at `path` (a `named_modules()` name); an unknown path lists the closest valid ones."""
    model = unwrap(model)
    modules = dict(model.named_modules())
    problem = unknown_layer(path, list(modules), getattr(model, "path_prefixes", ()), type(model).__name__)
    if problem:
        raise UserError(problem)
    return modules[resolve_path(model, path)]


def call_model(model: nn.Module, inputs: Any) -> Any:
    """`model(**inputs)` for a mapping of keyword inputs (Hugging Face style), else `model(inputs)`."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def as_tensor(output: Any) -> torch.Tensor:
    """The feature tensor of a module output (tensors, tuples as HF layers return, or model outputs)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    for key in ("last_hidden_state", "hidden_states", "logits"):
        value = getattr(output, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"cannot read a feature tensor from a module output of type {type(output).__name__}")


class _Reached(Exception):
    """Raised by a forward hook to stop a forward pass once a layer has run."""


def _stop(_module: nn.Module, _inputs: Any, _output: Any) -> None:
    raise _Reached


class FeatureTap:
    """The one hook manager: forward hooks recording the outputs of named layers, `features[path]` after
    each forward, used by readouts, the sieve, probes and Grad-CAM.

    With `differentiable=True` an output that does not require grad (frozen layers, integer inputs) is
    replaced by a copy that does, so gradients can be taken with respect to it (Grad-CAM, attributions).
    `forward_until` runs a forward only up to one tapped layer. Layers in `inputs_of` have their (first)
    input recorded in `inputs[path]` (a classifier's input: the embedding last-layer retraining reads).
    Use as a context manager, or call
    `close()`: no hook is left on the model afterwards. A module run several times in one forward (shared
    weights) keeps its last output.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str], differentiable: bool = False,
                 inputs_of: Iterable[str] = ()):
        self.model = model
        self.paths = list(dict.fromkeys(paths))
        self.differentiable = differentiable
        self.features: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self.modules = {path: find_module(model, path) for path in self.paths}  # every path checked before any hook
        inputs_of = {path: find_module(model, path) for path in dict.fromkeys(inputs_of)}
        self._handles = [m.register_forward_hook(self._recorder(p)) for p, m in self.modules.items()]
        self._handles += [m.register_forward_pre_hook(self._input_recorder(p)) for p, m in inputs_of.items()]

    def _recorder(self, path: str) -> Any:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            if self.differentiable and isinstance(output, torch.Tensor) and not output.requires_grad:
                output = output.detach().requires_grad_(True)
                self.features[path] = output
                return output  # the substitute flows on, so the logits depend on it
            self.features[path] = as_tensor(output)
            return None

        return record

    def _input_recorder(self, path: str) -> Any:
        def record(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
            self.inputs[path] = as_tensor(inputs)

        return record

    def forward_until(self, inputs: Any, path: str) -> torch.Tensor:
        """The output of tapped layer `path` for `inputs`, stopping the forward there (later layers never run)."""
        handle = self.modules[path].register_forward_hook(_stop)  # after the recorder, so it records first
        try:
            call_model(unwrap(self.model), inputs)
        except _Reached:
            pass
        finally:
            handle.remove()
        return self.features[path]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()
        self.inputs.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parameters_feeding(model: nn.Module, path: str, example_input: Any) -> list[str]:
    """Names of the parameters the output of layer `path` depends on (found by autograd on one forward).

    These are "the early layers" of the sieve: the stem and the stages up to and including `path`,
    for any architecture, including parameters owned directly by a parent (e.g. position embeddings).
    """
    model = unwrap(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), FeatureTap(model, [path]) as tap:
            call_model(model, example_input)
            feature = tap.features[path]
            grads = torch.autograd.grad(feature.float().sum(), [p for _, p in named], allow_unused=True)
    finally:
        model.train(was_training)
    return [n for (n, _), g in zip(named, grads) if g is not None]
