"""Exceptions for bad user input (the CLI prints them as one line and exits with code 2), and reading the
files the tool is given so that a missing or broken one is such an exception, never a traceback."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class UserError(Exception):
    """An error caused by input the user can fix (config, paths, names); never a bug in the toolkit."""


class ConfigError(UserError):
    """One or more problems in a configuration, reported together."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def did_you_mean(name: str, options: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean ...?)' suffix naming the closest options, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(options), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def file_error(what: str, path: str | Path, problem: str, advice: str = "") -> UserError:
    """The one-line error for a file: `<what> '<path>' <problem>; <advice>` (first line of `problem` only)."""
    problem = problem.splitlines()[0] if problem else problem
    return UserError(f"{what} {str(path)!r} {problem}" + (f"; {advice}" if advice else ""))


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
