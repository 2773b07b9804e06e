"""Weights from a local file into a model: pretrained backbones whose classifier head is new, and whole trained
models (state dicts as PyTorch, Lightning and DataParallel save them), never a silent miss."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earlyreadout.errors import UserError, file_error
from earlyreadout.io import load_checkpoint

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")  # {"state_dict": ...} and the like
PREFIXES = ("module.", "_orig_mod.", "model.", "net.")  # DataParallel, torch.compile, Lightning attributes


def unwrap_state(state: Any) -> Any:
    """The state dict inside the wrappers training code saves (`{"state_dict": ...}`, `{"model": ...}`)."""
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return unwrap_state(state[key])
    return state


def is_state_dict(state: Any) -> bool:
    return isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Pretrained weights from `path` (loaded with `weights_only=True`; wrappers and DataParallel `module.`
    prefixes are accepted)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"pretrained weights {str(p)!r} were requested but the file does not exist; fix "
                        "model.weights (--weights) or set it to null to train from a random initialisation")
    state = unwrap_state(load_checkpoint(p, advice="fix model.weights (--weights) or set it to null to train from "
                                         "a random initialisation", what="pretrained weights"))
    if not is_state_dict(state):
        raise UserError(f"{str(p)!r} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_trained(path: str | Path, allow_pickled_module: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a trained model's file: a state dict (or one inside a wrapper), or, only with
    `allow_pickled_module`, a whole pickled `nn.Module` (which can run code when loaded, so it warns)."""
    p = Path(path).expanduser()
    advice = "save the model with torch.save(model.state_dict(), PATH)"
    if not p.is_file():
        raise file_error("checkpoint", p, "does not exist", "give the file your training code saved")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # garbled, not a pickle naming classes that were refused
            raise file_error("checkpoint", p, "is truncated or not a PyTorch file", advice) from None
        if not allow_pickled_module:
            raise file_error("checkpoint", p, "holds pickled Python objects (a whole saved module?), which are not "
                             "loaded unasked because loading them can run code", f"{advice}, or pass "
                             "--pickled-module if you trust the file") from None
        warnings.warn(f"loading {p} with pickle: it can run code; do this only for files you trust", stacklevel=2)
        try:
            state = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001  (unpickling runs foreign code)
            raise file_error("checkpoint", p, f"cannot be unpickled ({type(e).__name__}: {e})",
                             "import the module it was saved from first, or save a state dict") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        raise file_error("checkpoint", p, f"is truncated or not a PyTorch file ({str(e).splitlines()[0][:100]})",
                         advice) from None
    if isinstance(state, nn.Module):
        state = state.state_dict()
    state = unwrap_state(state)
    if not is_state_dict(state):
        raise file_error("checkpoint", p, f"holds a {type(state).__name__}, not a state dict of tensors", advice)
    return state


def mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], ignore: Sequence[str] = ()) -> str:
    """The missing, unexpected and mis-shaped keys of `state` against a model's own state dict (the first four
    of each), '' when it fits; keys in `ignore` may be missing."""
    missing = [k for k in own if k not in state and k not in ignore]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
             if k in own and state[k].shape != own[k].shape]
    return "; ".join(f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})"
                     for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                     if keys)


def fitted_keys(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with the wrapper prefixes removed that make its keys the model's (`module.`, `model.`, ...)."""
    for _ in range(len(PREFIXES)):
        if set(state) == set(own):
            break
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def load_trained_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a whole trained model's `state` into `model`; keys that do not fit are an error naming them."""
    own = model.state_dict()
    state = fitted_keys(own, state)
    problem = mismatch(own, state)
    if problem:
        raise UserError(f"checkpoint {source!r} does not fit {type(model).__name__} ({problem}); build the model "
                        "it was saved from (--model, model.kwargs)")
    model.load_state_dict(state)


def load_backbone(model: nn.Module, path: str | Path, head: Sequence[str]) -> None:
    """Load every weight of `model` from `path` except the classifier `head` (module names), which keeps
    its fresh initialisation for the new number of classes. Any other missing, extra or mis-shaped
    tensor is an error naming it."""
    state = read_state_dict(path)
    own = model.state_dict()
    is_head = [k for k in own if any(k == h or k.startswith(h + ".") for h in head)]
    state = {k: v for k, v in state.items() if not any(k == h or k.startswith(h + ".") for h in head)}
    problem = mismatch(own, state, ignore=is_head)
    if problem:
        raise UserError(f"weights {str(path)!r} do not fit {type(model).__name__} ({problem}); "
                        "check the architecture matches the file")
    model.load_state_dict(state, strict=False)
