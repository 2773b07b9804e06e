"""Reading and writing files: the files the tool is given, read so that a missing or broken one is a
`UserError` naming it (never a traceback), and atomic writes (temp file + rename) of checkpoints and run files."""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from earlyreadout.errors import file_error


def read_text_file(path: str | Path, what: str, advice: str = "") -> str:
    """The text of a file the tool was pointed at; missing, unreadable or non-UTF-8 is a `file_error`."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise file_error(what, path, problem, advice)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise file_error(what, path, f"cannot be read ({e.strerror})", advice) from None
    except UnicodeDecodeError:
        raise file_error(what, path, "is not a text file (not UTF-8)", advice) from None


def _parse(text: str, form: str) -> tuple[Any, str | None]:
    """(value, None), or (None, where and what the problem is) for JSON or YAML text."""
    try:
        return (json.loads(text) if form == "JSON" else yaml.safe_load(text)), None
    except json.JSONDecodeError as e:
        return None, (f"line {e.lineno}, " if "\n" in text.strip() else "") + f"column {e.colno}: {e.msg}"
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e)
        return None, (f"line {mark.line + 1}: " if mark is not None else "") + str(problem)


def _read_mapping(text: str, what: str, path: Path, form: str, advice: str) -> dict[str, Any]:
    """The mapping `text` holds (empty YAML is an empty one); anything else is a `file_error`."""
    value, problem = _parse(text, form)
    if problem is not None:
        raise file_error(what, path, f"is not valid {form} ({problem})", advice)
    value = {} if value is None and form == "YAML" else value
    if not isinstance(value, dict):
        raise file_error(what, path, f"must hold a {form} mapping, got {type(value).__name__}", advice)
    return value


def read_json_file(path: str | Path, what: str, advice: str = "") -> dict[str, Any]:
    """A JSON file holding one object (metrics, summaries); any other content is a `file_error`."""
    return _read_mapping(read_text_file(path, what, advice), what, Path(path), "JSON", advice)


def read_jsonl_file(path: str | Path, what: str, advice: str = "") -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (blank lines skipped); a bad line is a `file_error` naming it."""
    lines = read_text_file(path, what, advice).splitlines()
    return [_read_mapping(line, f"line {n} of {what}", Path(path), "JSON", advice)
            for n, line in enumerate(lines, 1) if line.strip()]


def read_yaml_file(path: str | Path, what: str, advice: str = "") -> dict[str, Any]:
    """A YAML file holding a mapping (an empty file is an empty one); any other content is a `file_error`."""
    return _read_mapping(read_text_file(path, what, advice), what, Path(path), "YAML", advice)


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
    """Write text atomically."""
    _atomic(Path(path), lambda f: f.write(text.encode()))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
