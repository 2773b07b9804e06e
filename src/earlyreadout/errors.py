"""Exceptions for bad user input (the CLI prints them as one line and exits with code 2), and their messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


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
