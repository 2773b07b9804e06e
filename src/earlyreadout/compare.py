"""Train several methods (and seeds) on one dataset with one shared config; one results table.

A compare is a one-dataset study: each method asked for is an arm, `ceiling` the ceiling arm and `A+B` an arm
refitting A's runs with B; its plan's jobs run here, one at a time, into `<out>/<arm>/seed<k>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from earlyreadout.config import RunConfig, build_config, raw_config, set_values
from earlyreadout.data import load_splits
from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.experiments.ceiling import CEILING, ceiling_options
from earlyreadout.experiments.ceiling import METHOD as CEILING_METHOD
from earlyreadout.experiments.job import Job, job_of, run, run_config
from earlyreadout.experiments.plan import Plan
from earlyreadout.experiments.study import Arm, Study
from earlyreadout.io import write_json
from earlyreadout.methods import METHODS, Method, refuse_lacking_labels
from earlyreadout.report.page import write_report
from earlyreadout.report.table import labels_of, table, times_vs_erm
from earlyreadout.train.feature_quality import feature_quality as quality_of
from earlyreadout.train.retrain import last_layer_methods, refit_settings

SELECT = "selected"  # the one selection label of a compare's study (its rule: the config's train.select_by)
# `A+B`: method A trained, then its selected model's last layer refitted by B (a last-layer method)
THEN = "+"
LABEL_RANK = ("none", "val", "train", "unknown")  # fewest labels first (unknown: a model trained elsewhere)
# families of methods by the group labels they read at their default settings
FAMILIES = {"all": LABEL_RANK[:3], "label-free": ("none",), "group-labels": ("val", "train")}


def expand_methods(names: list[str]) -> tuple[list[str], list[str]]:
    """(the methods `names` asks for, with each family expanded and ERM first in a family, no repeats;
    the distillers a family left out, as they need a teacher run)."""
    out: list[str] = []
    skipped: list[str] = []
    for name in names:
        if name in FAMILIES:
            members = [m for m in METHODS if labels_of(m, {}) in FAMILIES[name]]
            skipped += [m for m in members if "teacher" in METHODS.get(m).hparams]
            out += sorted((m for m in members if m not in skipped), key=lambda m: m != "erm")
        elif name in METHODS or name == CEILING:
            out.append(name)
        elif THEN in name:
            first, _, refit = name.partition(THEN)
            if first not in METHODS or refit not in last_layer_methods():
                raise UserError(f"{name!r}: A{THEN}B trains method A, then refits its last layer with B; A must "
                                f"be a method and B one of {', '.join(last_layer_methods())}")
            out.append(name)
        else:
            known = [*METHODS, *FAMILIES, CEILING]
            raise UserError(f"unknown method {name!r}{did_you_mean(name, known)}; --methods takes methods "
                            f"({', '.join(METHODS)}), families ({', '.join(FAMILIES)}), {CEILING} and "
                            f"A{THEN}B pairs")
    return list(dict.fromkeys(out)), list(dict.fromkeys(m for m in skipped if m not in out))


def compare(methods: list[str], out: str | Path, config: str | None = None, overrides: list[str] | None = None,
            seeds: int = 1, first_seed: int = 0, values: dict[str, Any] | None = None,
            feature_quality: bool = False) -> list[dict[str, Any]]:
    """Run each method x seed into `<out>/<method>/seed<k>`; finished runs are reused, not retrained.

    `config`, typed `values` (flags) and `overrides` (key=value, which win) are shared by every run. The
    pseudo-method `ceiling` is ERM on group-balanced train (`data.correlation=1/n_classes`, generated benchmarks
    only): the best a method can hope for on that benchmark, shown beside the others. Families (`all`,
    `label-free`, `group-labels`) stand for the methods reading those group labels (see `expand_methods`).
    `A+B` trains A (in A's own folder), then refits its selected model with the last-layer method B. With
    `feature_quality`, each trained run's features are also judged by a DFR refit (train/feature_quality.py).
    """
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {seeds}")
    methods, skipped = expand_methods(methods)
    if skipped:
        print(f"left out {', '.join(skipped)}: distillers train from a teacher run (`earlyreadout distill "
              "--teacher RUN`); name one with method.teacher=RUN to include it")
    study = study_of(methods, raw_config(config, overrides, values), tuple(range(first_seed, first_seed + seeds)))
    plan = Plan(study, Path(out))
    jobs = {(m, seed): plan.job(m, study.data[0], SELECT, seed) for m in methods for seed in study.seeds}
    # validate every run's config, and the labels every method reads, before training anything
    configs = {(m, seed): run_config(trained(plan, m, seed)) for m, seed in jobs}
    check_labels(configs)
    results, runs = [], []
    for (m, seed), job in jobs.items():
        cfg = configs[m, seed]
        print(f"== {m} seed {seed} -> {cfg.out}")
        result = run(trained(plan, m, seed))
        labels = result.get("labels_used") or labels_of(cfg.method.name, cfg.method.settings)  # (runs from before the key)
        if job.source is not None:
            print(f"== refit by {job.method} -> {job.out}")
            result = run(job)
            labels = max(labels, result.get("labels_used", "none"), key=LABEL_RANK.index)  # the more of the pair
        quality = quality_of(cfg.out) if feature_quality and job.source is None else None
        results.append({**result, "method": m, "labels_used": labels, **({"feature_quality": quality} if quality else {})})
        runs.append(job.out)
    relative = times_vs_erm(results)
    results = [{**r, "time_vs_erm": relative[r["method"]]} if relative else r for r in results]
    text = table(results)
    print()
    print(text)
    write_json(results, Path(out) / "summary.json")
    (Path(out) / "summary.txt").write_text(text + "\n")
    report = write_report(runs, Path(out) / "report.html")
    print(f"report written to {report}")
    return results


def study_of(methods: list[str], raw: dict[str, Any], seeds: tuple[int, ...]) -> Study:
    """The one-dataset study of a compare: an arm per method asked for (the config's settings shared, its run
    kept), `ceiling` on the ceiling's data options, `A+B` refitting arm A's runs (A added where not asked for)."""
    first = build_config(set_values(raw, {"method.name": trained_method(methods[0])}))  # every problem at once
    base = job_of("base", raw)  # the run every arm varies
    shared = {"hp": base.hp, "data_options": base.data_options, "train": base.train, "model": base.model,
              "keep": True}
    arms: dict[str, Arm] = {}
    for m in methods:
        if m == CEILING:
            try:
                ceiling_options(base.data, base.data_options)
            except UserError as e:
                raise UserError(f"{e}: drop it from --methods") from None
            arms[m] = Arm(CEILING_METHOD, ceiling=True, **shared)
        elif THEN in m:
            source, _, refit = m.partition(THEN)
            arms.setdefault(source, Arm(source, **shared))
            arms[m] = Arm(refit, refit=source, keep=True)
        else:
            arms[m] = Arm(m, **shared)
    return Study("compare", "", (base.data,), arms, seeds, {SELECT: first.train.select_by}, key="{arm}/seed{seed}")


def trained_method(name: str) -> str:
    """The method that trains for `name` of --methods (A of `A+B`; erm for the ceiling)."""
    return CEILING_METHOD if name == CEILING else name.partition(THEN)[0]


def trained(plan: Plan, name: str, seed: int) -> Job:
    """The job that trains for arm `name`'s run on `seed`: its own, or (a refit arm) that of the arm it refits."""
    return plan.job(plan.study.arms[name].refit or name, plan.study.data[0], SELECT, seed)


def check_labels(configs: dict[tuple[str, int], RunConfig]) -> None:
    """Refuse, before anything trains, every method (and `A+B` refit) that needs group labels the data does not
    have, all named in one line; the data is loaded for it only where some method reads group labels."""
    needs: dict[str, list[tuple[str, type[Method], Mapping[str, Any]]]] = {}
    for (m, _), cfg in configs.items():
        needs[m] = [(m, METHODS.get(cfg.method.name), cfg.method.settings)]
        if THEN in m:
            refit = m.partition(THEN)[2]
            needs[m].append((m, METHODS.get(refit), refit_settings(cfg.method.settings, refit)))
    reading = [m for m, pairs in needs.items() if any(cls.labels_used(hp) != "none" for _, cls, hp in pairs)]
    if reading:
        cfg = next(c for (m, _), c in configs.items() if m == reading[0])
        refuse_lacking_labels([need for m in reading for need in needs[m]], load_splits(cfg.data.name, cfg.data.settings),
                              "drop them from --methods, or compare --methods label-free")

