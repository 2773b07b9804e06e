"""Declared parameters: a default, a constraint and a search space in one place.

Methods, datasets, models and the training loop each declare their parameters as `Param`s; config
validation, the CLI and hyperparameter search all read those declarations.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from earlyreadout.errors import ConfigError, did_you_mean


class Trial(Protocol):
    """The part of an Optuna trial a search space needs."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...
    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def suggest(self, trial: Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def suggest(self, trial: Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int

    def suggest(self, trial: Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high)


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))


Space = LogUniform | Uniform | IntRange | Choice


@dataclass(frozen=True)
class Param:
    """One parameter: its default, what values are allowed, and (optionally) its search space.

    The type is the default's type unless `kind` says otherwise; `None` is allowed when `nullable`.
    Bounds are inclusive unless `open_low` / `open_high`. A `path` is made absolute when it is read.
    `affects_results=False` marks a setting that cannot change what a run computes (device, workers,
    progress bars): a resume may change it, and a report groups runs across it. `check` tests what a
    constraint cannot say (e.g. that a device exists) and returns the problem in words.
    """

    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] | None = None
    search: Space | None = None
    nullable: bool = False
    kind: type | None = None
    path: bool = False  # a file or folder: stored absolute, so a run resumes from any working directory
    affects_results: bool = True
    check: Callable[[Any], str | None] | None = None  # a further test of a well-typed value: a problem or None
    layer: bool = False  # layers of the model: module paths or stage:N, comma-separated (checked at config time)

    @property
    def type(self) -> type:
        if self.kind is not None:
            return self.kind
        if self.default is None:
            return str
        return type(self.default)

    def describe(self) -> str:
        """Words for the allowed values, e.g. 'a float in the range (0, inf)'."""
        t = self.type
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.path:
            text = "a path (a non-empty string)"
        else:
            article = "an" if t.__name__[0] in "aeiou" else "a"
            text = f"{article} {t.__name__}"
            if self.low is not None or self.high is not None:
                lo = "-inf" if self.low is None else f"{self.low:g}"
                hi = "inf" if self.high is None else f"{self.high:g}"
                text += (
                    f" in the range {'(' if self.open_low or self.low is None else '['}{lo}, "
                    f"{hi}{')' if self.open_high or self.high is None else ']'}"
                )
        return text + (" or null" if self.nullable else "")

    def coerce(self, value: Any) -> Any:
        """Return `value` converted to this parameter's type; raise ValueError when not allowed."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError
        t = self.type
        if t is bool:
            if isinstance(value, bool):
                out: Any = value
            elif isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                out = value.lower() in ("true", "yes", "1")
            else:
                raise ValueError
        elif t is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out = int(value)
        elif t is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if math.isnan(out):
                raise ValueError
        elif t is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool) or (self.path and value == ""):
                raise ValueError
            out = os.path.abspath(os.path.expanduser(str(value))) if self.path else str(value)
        elif t in (list, tuple):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            out = list(value)
        else:
            out = value
        if self.choices is not None and out not in self.choices:
            raise ValueError
        if self.low is not None and (out < self.low or (self.open_low and out == self.low)):
            raise ValueError
        if self.high is not None and (out > self.high or (self.open_high and out == self.high)):
            raise ValueError
        return out


# settings renamed before the first release: an old name is refused with its new one (where the owner has it)
RETIRED = {
    "T": "erm_epochs",
    "head": "readout_head", "depth": "readout_depth", "width": "readout_width", "token_pool": "readout_token_pool",
    "lr": "readout_lr",
    **{f"aux_{k}": f"readout_{k}" for k in ("layer", "head", "depth", "width", "token_pool", "lr", "momentum",
                                            "weight_decay", "weight", "steps")},
}


def resolve(specs: dict[str, Param], given: dict[str, Any], owner: str) -> tuple[dict[str, Any], list[str]]:
    """Fill defaults and validate `given` against `specs`; return (values, problems).

    Every problem is collected (unknown keys with suggestions, wrong types, out-of-range values), so a
    user sees them all at once; a setting given by a name in `RETIRED` is refused with its current name.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in given:
        if key not in specs and RETIRED.get(key) in specs:
            problems.append(f"{owner}: {key!r} was renamed to {RETIRED[key]!r}; use {RETIRED[key]}")
        elif key not in specs:
            problems.append(
                f"unknown parameter {key!r} for {owner}{did_you_mean(key, specs)}; "
                f"known: {', '.join(sorted(specs)) or '(none)'}"
            )
    for key, spec in specs.items():
        if key not in given:
            values[key] = spec.default
            continue
        try:
            values[key] = spec.coerce(given[key])
            problem = spec.check(values[key]) if spec.check is not None and values[key] is not None else None
            if problem:
                problems.append(f"{owner}: {problem}")
        except (ValueError, TypeError):
            close = did_you_mean(given[key], map(str, spec.choices)) if spec.choices and isinstance(given[key], str) \
                else ""
            problems.append(
                f"the {key!r} parameter of {owner} must be {spec.describe()}; got {given[key]!r} instead{close}"
            )
    return values, problems


def checked(specs: dict[str, Param], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`resolve` for a function's or a class's options: the values with defaults filled in, or a ConfigError
    naming every problem (so a library call fails as clearly, and as early, as the command)."""
    values, problems = resolve(specs, dict(given), owner)
    if problems:
        raise ConfigError(problems)
    return values


def named_layers(specs: dict[str, Param], values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(setting, layer) for each layer that the settings declared `layer=True` name (a comma-separated list of
    module paths or stage:N)."""
    return [(key, layer.strip()) for key, spec in specs.items() if spec.layer and isinstance(values.get(key), str)
            for layer in values[key].split(",")]
