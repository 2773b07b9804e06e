"""A study's declaration (`Study`, `Arm`): what a benchmark spec, and `compare` on one dataset, declare.

A study trains every arm on every dataset, under every selection rule (`train.select_by`) and seed. An
arm with `candidates` is first searched: each candidate runs on `search_seeds`, one is chosen on
validation worst-group accuracy by each rule of `Study.choose`, and the chosen one runs on the study's
seeds. Rules: `each` (the best on this dataset), `pooled` (the best on all datasets together: one setting
for every benchmark) and `leave-one-out` (the best on the other datasets, judged on this one). Job keys
come from templates with the fields {data}, {select}, {arm}, {method}, {setting} (a candidate's name) and
{seed}; a spec that keeps a study's earlier keys reuses its logged runs. `Study.picks` chooses among whole
arms (e.g. two pipelines) by the same rules, on their runs' validation worst-group accuracy. An arm with
`ceiling` runs on each dataset's ceiling options (`ceiling.ceiling_options`). How a study becomes jobs is
`plan.Plan`'s.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from earlyreadout.data import DATASETS
from earlyreadout.errors import did_you_mean
from earlyreadout.experiments.ceiling import has_ceiling
from earlyreadout.experiments.job import SEARCH_SEED
from earlyreadout.methods import METHODS

RULES = ("each", "pooled", "leave-one-out")
FRESH_SEEDS = (1, 2, 3)  # a winner is re-trained on these, never on the seed it was chosen with


@dataclass(frozen=True)
class Arm:
    """One row of a study's table: a method and its settings (or candidate settings to choose from)."""

    method: str
    hp: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] | dict[str, dict[str, Any]] | None = None  # a list: named by JSON
    search_seeds: tuple[int, ...] = (SEARCH_SEED,)
    refit: str | None = None  # the arm whose runs this one refits (last-layer retraining) instead of training
    teacher: str | None = None  # the arm whose run (its first seed) is this one's teacher
    time_relative_to: str | None = None  # the arm whose training time (same data, rule, seed) divides this
    seeds: tuple[int, ...] | None = None  # None: the study's
    data: tuple[str, ...] | None = None  # None: every dataset of the study
    select: tuple[str, ...] | None = None  # None: every selection rule of the study
    key: str | None = None  # None: the study's template
    search_key: str | None = None  # None: `key`
    log: str | None = None  # None: the study's log
    keep: bool = False  # keep its run directories (teachers and refitted runs must be kept)
    ceiling: bool = False  # train on each dataset's ceiling options (group-balanced train; its method: erm)

    def named_candidates(self) -> dict[str, dict[str, Any]]:
        """Candidate name -> settings (a list's candidates are named by their JSON, keys sorted)."""
        if isinstance(self.candidates, dict):
            return self.candidates
        return {json.dumps(hp, sort_keys=True): hp for hp in self.candidates or []}


@dataclass(frozen=True)
class Study:
    """A training study: arms x datasets (`name` or `name:key=value,...`) x selection rules x seeds."""

    name: str
    about: str
    data: tuple[str, ...]
    arms: dict[str, Arm]
    seeds: tuple[int, ...] = FRESH_SEEDS
    select: dict[str, str] = field(default_factory=lambda: {"worst_group": "worst_group"})  # -> select_by
    choose: tuple[str, ...] = ("each",)
    key: str = "{data}/{arm}/seed{seed}"
    log: str = ""  # "": <name>_runs.jsonl
    workers: int = 2
    picks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> arms (whole pipelines) to pick from

    def __post_init__(self) -> None:
        problems = [f"unknown choice rule {r!r} (one of {', '.join(RULES)})" for r in self.choose
                    if r not in RULES]
        problems += [f"unknown dataset {d!r}{did_you_mean(dataset(d)[0], DATASETS)}" for d in self.data
                     if dataset(d)[0] not in DATASETS]
        for name, arm in self.arms.items():
            if arm.method not in METHODS:
                problems.append(f"arm {name!r}: unknown method {arm.method!r}{did_you_mean(arm.method, METHODS)}")
            problems += [f"arm {name!r}: {problem}" for problem in ceiling_problems(arm, self.data)]
            for role, other in (("refit", arm.refit), ("teacher", arm.teacher),
                                ("time_relative_to", arm.time_relative_to)):
                if other is not None and other not in self.arms:
                    problems.append(f"arm {name!r}: {role} names no arm ({other!r})")
                elif other is not None and role != "time_relative_to" and not self.arms[other].keep:
                    problems.append(f"arm {name!r}: {role} {other!r} must keep its runs (keep=True)")
            if arm.candidates is not None:  # candidates' (and, with several rules, winners') runs: own keys
                final = arm.key or self.key
                for what, template in (("search", arm.search_key or final), ("final", final)):
                    if "{setting}" not in template and (what == "search" or len(self.choose) > 1):
                        problems.append(f"arm {name!r}: its {what} key template has no {{setting}} "
                                        f"({template!r})")
        for name, among in self.picks.items():
            if name in self.arms:
                problems.append(f"pick {name!r}: an arm has that name")
            problems += [f"pick {name!r}: " + (f"names no arm ({n!r})" if n not in self.arms else
                                                f"arm {n!r} has candidates (pick among plain arms)")
                         for n in among if n not in self.arms or self.arms[n].candidates is not None]
        if problems:
            raise ValueError(f"study {self.name!r}: " + "; ".join(problems))

    def log_of(self, arm: Arm) -> str:
        """The JSONL log (a file name under the results folder) that holds `arm`'s runs."""
        return arm.log or self.log or f"{self.name}_runs.jsonl"

    def cells(self, name: str) -> list[tuple[str, str]]:
        """(dataset, selection label) pairs arm `name` runs on."""
        arm = self.arms[name]
        return [(d, s) for d in arm.data or self.data for s in arm.select or tuple(self.select)]

    def spec(self) -> dict[str, Any]:
        """The study as plain data (what a result file records)."""
        return asdict(self)


def dataset(text: str) -> tuple[str, dict[str, Any]]:
    """`name` or `name:key=value,...` -> (name, options), values read as YAML scalars."""
    name, _, rest = text.partition(":")
    return name, {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in rest.split(",") if item)}


def ceiling_problems(arm: Arm, data: tuple[str, ...]) -> list[str]:
    """Why a ceiling arm cannot run on its datasets (unknown ones are the study's to report)."""
    names = dict.fromkeys(dataset(d)[0] for d in arm.data or data) if arm.ceiling else {}
    return [f"{n!r} has no ceiling (no correlation option)" for n in names if n in DATASETS and not has_ceiling(n)]
