"""Pretrained weights from a local file into a backbone whose classifier head is new (never a silent miss)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.io import load_checkpoint


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from `path` (loaded with `weights_only=True`; `state_dict` / `model` wrappers and
    DataParallel `module.` prefixes are accepted)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"pretrained weights {str(p)!r} were requested but the file does not exist; fix "
                        "model.weights (--weights) or set it to null to train from a random initialisation")
    state: Any = load_checkpoint(p, advice="fix model.weights (--weights) or set it to null to train from a random "
                                 "initialisation", what="pretrained weights")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{str(p)!r} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone(model: nn.Module, path: str | Path, head: Sequence[str]) -> None:
    """Load every weight of `model` from `path` except the classifier `head` (module names), which keeps
    its fresh initialisation for the new number of classes. Any other missing, extra or mis-shaped
    tensor is an error naming it."""
    state = read_state_dict(path)
    own = model.state_dict()
    is_head = [k for k in own if any(k == h or k.startswith(h + ".") for h in head)]
    state = {k: v for k, v in state.items() if not any(k == h or k.startswith(h + ".") for h in head)}
    missing = [k for k in own if k not in state and k not in is_head]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
             if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise UserError(f"weights {str(path)!r} do not fit {type(model).__name__} ({'; '.join(parts)}); "
                        "check the architecture matches the file")
    model.load_state_dict(state, strict=False)
