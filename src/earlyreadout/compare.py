"""Train several methods (and seeds) on one dataset with one shared config; one results table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from earlyreadout.config import RunConfig, build_config, raw_config, set_values
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.io import write_json
from earlyreadout.methods import METHODS, Method, refuse_lacking_labels
from earlyreadout.report.page import write_report
from earlyreadout.report.table import labels_of, table, times_vs_erm
from earlyreadout.train.engine import train
from earlyreadout.train.feature_quality import feature_quality as quality_of
from earlyreadout.train.retrain import last_layer_methods, refit_settings, retrain
from earlyreadout.train.runs import RunDir

CEILING = "ceiling"
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
    raw = raw_config(config, overrides, values)
    out = Path(out)
    # validate every method's config before training anything
    configs = {}
    for m in methods:
        trained = m.partition(THEN)[0]  # A of `A+B` trains into A's own folder, shared with a plain A
        for s in range(seeds):
            seed = first_seed + s
            run = {"train.seed": seed, "out": str(out / trained / f"seed{seed}"),
                   "method.name": "erm" if m == CEILING else trained}
            if m == CEILING:
                base = build_config(set_values(raw, run))
                if "correlation" not in DATASETS.get(base.data.name).options:
                    raise UserError(f"the {CEILING} (ERM on group-balanced train) needs a generated benchmark with a "
                                    f"correlation option; {base.data.name!r} has none: drop it from --methods")
                # one attribute per class: agreement 1/n_classes leaves every (label, attribute) group equally likely
                run["data.correlation"] = 1.0 / base.data.settings.get("n_classes", 2)
            configs[m, seed] = build_config(set_values(raw, run))
    check_labels(configs)
    results, runs = [], []
    for (m, seed), cfg in configs.items():
        print(f"== {m} seed {seed} -> {cfg.out}")
        result = RunDir(cfg.out).train_or_reuse(cfg, train)
        labels = result.get("labels_used") or labels_of(cfg.method.name, cfg.method.settings)  # (runs from before the key)
        path = cfg.out
        if THEN in m:
            path = str(out / m / f"seed{seed}")
            result, labels = refitted(cfg.out, m.partition(THEN)[2], path, labels)
        quality = quality_of(cfg.out) if feature_quality and THEN not in m else None
        results.append({**result, "method": m, "labels_used": labels, **({"feature_quality": quality} if quality else {})})
        runs.append(path)
    relative = times_vs_erm(results)
    results = [{**r, "time_vs_erm": relative[r["method"]]} if relative else r for r in results]
    text = table(results)
    print()
    print(text)
    write_json(results, out / "summary.json")
    (out / "summary.txt").write_text(text + "\n")
    report = write_report(runs, out / "report.html")
    print(f"report written to {report}")
    return results


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


def refitted(source: str, method: str, out: str, source_labels: str) -> tuple[dict[str, Any], str]:
    """(metrics of `source` refitted by the last-layer `method` into `out`, read back if done; the labels the
    pair read: the more of the two)."""
    run = RunDir(out)
    print(f"== refit by {method} -> {out}")
    result = run.read_metrics() if run.done.exists() else retrain(source, method, out)
    labels = max(source_labels, result.get("labels_used", "none"), key=LABEL_RANK.index)
    return result, labels
