"""The plan of a study: its jobs stage by stage (sources, searches, chosen candidates), the choice rules, and
one results table from the logged rows."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from earlyreadout.experiments.ceiling import ceiling_options
from earlyreadout.experiments.job import Job
from earlyreadout.experiments.study import Arm, Study, dataset
from earlyreadout.experiments.summary import summary
from earlyreadout.metrics import mean_std


def pools(cells: list[tuple[str, str]], data: str, select: str) -> dict[str, list[str]]:
    """The datasets each choice rule judges on, for `data` under selection label `select`: `each` itself,
    `pooled` every dataset of `cells` with that label, `leave-one-out` those but `data` (itself if alone)."""
    everywhere = [d for d, s in cells if s == select]
    return {"each": [data], "pooled": everywhere, "leave-one-out": [d for d in everywhere if d != data] or [data]}


class Plan:
    """The jobs of a study, built stage by stage from the rows logged so far."""

    def __init__(self, study: Study, runs_root: Path):
        self.study = study
        self.runs_root = runs_root  # kept runs live in <runs_root>/<job key>
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
        options = {**options, **arm.data_options}
        if arm.ceiling:
            options.update(ceiling_options(name_, options))
        self.logs[key] = study.log_of(arm)
        return Job(key, name_, arm.method, hp, seed, options,
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
