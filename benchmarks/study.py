"""What a spec declares (`Study`, `Arm`), and how a study becomes jobs, choices and one results table.

A study trains every arm on every dataset, under every selection rule (`train.select_by`) and seed. An
arm with `candidates` is first searched: each candidate runs on `search_seeds`, one is chosen on
validation worst-group accuracy by each rule of `Study.choose`, and the chosen one runs on the study's
seeds. Rules: `each` (the best on this dataset), `pooled` (the best on all datasets together: one setting
for every benchmark) and `leave-one-out` (the best on the other datasets, judged on this one). Job keys
come from templates with the fields {data}, {select}, {arm}, {method}, {setting} (a candidate's name) and
{seed}; a spec that keeps a study's earlier keys reuses its logged runs. `Study.picks` chooses among whole
arms (e.g. two pipelines) by the same rules, on their runs' validation worst-group accuracy.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.protocol import FRESH_SEEDS, ROOT, SEARCH_SEED, Job, summary
from earlyreadout.data import DATASETS
from earlyreadout.errors import did_you_mean
from earlyreadout.methods import METHODS
from earlyreadout.metrics import mean_std

RULES = ("each", "pooled", "leave-one-out")


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


def pools(cells: list[tuple[str, str]], data: str, select: str) -> dict[str, list[str]]:
    """The datasets each choice rule judges on, for `data` under selection label `select`: `each` itself,
    `pooled` every dataset of `cells` with that label, `leave-one-out` those but `data` (itself if alone)."""
    everywhere = [d for d, s in cells if s == select]
    return {"each": [data], "pooled": everywhere, "leave-one-out": [d for d in everywhere if d != data] or [data]}


class Plan:
    """The jobs of a study, built stage by stage from the rows logged so far."""

    def __init__(self, study: Study, runs_root: Path | None = None):
        self.study = study
        self.runs_root = runs_root or ROOT / "runs" / "benchmarks" / study.name
        self.logs: dict[str, str] = {}  # job key -> the log that holds it

    def job(self, name: str, data: str, select: str, seed: int, setting: str | None = None,
            search: bool = False) -> Job:
        """Arm `name`'s job (with candidate `setting`; `search`: a search run) on one dataset, rule, seed."""
        arm, study = self.study.arms[name], self.study
        template = (arm.search_key if search else None) or arm.key or study.key
        key = template.format(data=data, select=select, arm=name, method=arm.method, setting=setting,
                              seed=seed)
        hp = {**arm.hp, **(arm.named_candidates()[setting] if setting is not None else {})}
        if arm.teacher is not None:
            hp["teacher"] = self.job(arm.teacher, data, select, self.seeds(arm.teacher)[0]).out
        source = self.job(arm.refit, data, select, seed).out if arm.refit is not None else None
        name_, options = dataset(data)
        self.logs[key] = study.log_of(arm)
        return Job(key, name_, arm.method, hp, seed, {**options, **arm.data_options},
                   {**arm.train, "select_by": study.select[select]}, arm.model,
                   str(self.runs_root / key) if arm.keep else None, source)

    def seeds(self, name: str) -> tuple[int, ...]:
        """The seeds arm `name` reports (its own, else the study's)."""
        return self.study.arms[name].seeds or self.study.seeds

    def sources(self) -> list[Job]:
        """Runs other arms read (teachers, refitted runs): the first stage."""
        needed = {a.refit for a in self.study.arms.values()} | {a.teacher for a in self.study.arms.values()}
        return [self.job(n, d, s, seed) for n in self.study.arms if n in needed
                for d, s in self.study.cells(n) for seed in self.seeds(n)]

    def searches(self) -> list[Job]:
        """Every candidate on its search seeds, and every arm without candidates on its seeds."""
        jobs = []
        for n, arm in self.study.arms.items():
            for d, s in self.study.cells(n):
                if arm.candidates is None:
                    jobs += [self.job(n, d, s, seed) for seed in self.seeds(n)]
                else:
                    jobs += [self.job(n, d, s, seed, c, search=True) for c in arm.named_candidates()
                             for seed in arm.search_seeds]
        return jobs

    def rows(self, rows: dict[str, dict[str, Any]], name: str, data: str, select: str, seeds: tuple[int, ...],
             setting: str | None = None, search: bool = False) -> list[dict[str, Any]]:
        """The logged rows of one arm (and candidate) on one dataset and rule, in the order of `seeds`."""
        return [rows[self.job(name, data, select, seed, setting, search).key] for seed in seeds]

    def chosen(self, rows: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str, str], str]:
        """(arm, dataset, selection label, rule) -> the chosen candidate's name, from the logged searches."""
        out = {}
        for n, arm in self.study.arms.items():
            if arm.candidates is None:
                continue
            cells = self.study.cells(n)

            def score(c: str, datasets: list[str], s: str, n: str = n, arm: Arm = arm) -> float:
                return statistics.fmean(r["val_worst_group"] for d in datasets
                                        for r in self.rows(rows, n, d, s, arm.search_seeds, c, search=True))

            for d, s in cells:
                for rule, pool in pools(cells, d, s).items():
                    if rule in self.study.choose:
                        out[n, d, s, rule] = max(arm.named_candidates(), key=lambda c, p=pool, s=s: score(c, p, s))
        return out

    def picked(self, rows: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str, str], str]:
        """(pick, dataset, selection label, rule) -> the arm picked among the pick's arms by the mean
        validation worst-group accuracy of their runs on the study's seeds (ties: the first listed)."""
        out = {}
        for p, among in self.study.picks.items():
            cells = [c for c in self.study.cells(among[0]) if all(c in self.study.cells(n) for n in among)]

            def score(n: str, datasets: list[str], s: str) -> float:
                return statistics.fmean(r["val_worst_group"] for d in datasets
                                        for r in self.rows(rows, n, d, s, self.seeds(n)))

            for d, s in cells:
                for rule, pool in pools(cells, d, s).items():
                    if rule in self.study.choose:
                        out[p, d, s, rule] = max(among, key=lambda n, pool=pool, s=s: score(n, pool, s))
        return out

    def finals(self, rows: dict[str, dict[str, Any]]) -> list[Job]:
        """The chosen candidates on the study's seeds."""
        return [self.job(n, d, s, seed, c) for (n, d, s, _rule), c in self.chosen(rows).items()
                for seed in self.seeds(n)]

    def results(self, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """results[dataset][selection label][arm]: mean ± std over seeds (and candidates, choices)."""
        out: dict[str, Any] = {}
        chosen = self.chosen(rows)
        for n, arm in self.study.arms.items():
            for d, s in self.study.cells(n):
                entry: dict[str, Any] = {"method": arm.method, "settings": arm.hp}
                if arm.candidates is None:
                    entry.update(self.described(rows, n, d, s))
                else:
                    searched = {c: self.rows(rows, n, d, s, arm.search_seeds, c, True)
                                for c in arm.named_candidates()}
                    entry["candidates"] = [{"name": c, "settings": hp, **summary(searched[c]),
                                            "seeds": list(arm.search_seeds)}
                                           for c, hp in arm.named_candidates().items()]
                    entry["chosen"] = {rule: {"name": c, "settings": arm.named_candidates()[c],
                                              **self.described(rows, n, d, s, c)}
                                       for rule in self.study.choose for c in [chosen[n, d, s, rule]]}
                out.setdefault(d, {}).setdefault(s, {})[n] = entry
        for (p, d, s, rule), n in self.picked(rows).items():
            entry = out[d][s].setdefault(p, {"pick": list(self.study.picks[p]), "chosen": {}})
            entry["chosen"][rule] = {"name": n, **self.described(rows, n, d, s)}
        return out

    def described(self, rows: dict[str, dict[str, Any]], name: str, data: str, select: str,
                  setting: str | None = None) -> dict[str, Any]:
        """Mean ± std of an arm's runs on the study's seeds, with its time relative to its source (a refit) or
        its reference arm, seed by seed, where both ran on the same device; the devices, where not the CPU."""
        arm, seeds = self.study.arms[name], self.seeds(name)
        arm_rows = self.rows(rows, name, data, select, seeds, setting)
        out = {**summary(arm_rows), "seeds": list(seeds)}
        devices = [r.get("device", "cpu") for r in arm_rows]
        if set(devices) != {"cpu"}:
            out["devices"] = devices
        reference = arm.refit or arm.time_relative_to
        if reference is not None:
            base = self.rows(rows, reference, data, select, seeds)
            if devices == [b.get("device", "cpu") for b in base]:
                out[f"time_over_{reference}"] = mean_std([r.get("retrain_time_s", r.get("train_time_s"))
                                                         / b["train_time_s"] for r, b in zip(arm_rows, base)])
        return out
