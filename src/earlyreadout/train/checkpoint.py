"""Atomic writes (temp file + rename) and safe loading of checkpoints and run files."""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from earlyreadout.errors import file_error


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """`torch.save` that never leaves a half-written file at `path`."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", advice: str = "",
                    what: str = "checkpoint") -> Any:
    """Load a checkpoint with `weights_only=True` (no arbitrary code from pickles).

    A missing, truncated or foreign file, and one holding objects other than tensors and plain containers,
    raise a `UserError` naming the file (as `what`) and what is wrong, followed by `advice` (what to do).
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(what, path, "does not exist", advice)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # a garbled pickle, not one naming a refused class or function
            raise file_error(what, path, "is truncated or not a PyTorch checkpoint", advice) from None
        raise file_error(what, path, "holds objects other than tensors and plain containers and is refused "
                         "on purpose (loading it could run code; nothing was executed)", advice) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise file_error(what, path, f"is truncated or not a PyTorch checkpoint ({reason})", advice
                         ) from None


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (NaN written as null)."""
    text = json.dumps(_nan_to_none(obj), indent=2, sort_keys=False)
    _atomic(Path(path), lambda f: f.write(text.encode() + b"\n"))


def write_text(text: str, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode()))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
