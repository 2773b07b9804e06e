"""A job: one run (method settings, data options, seed, ...), the one way it becomes a validated run config,
and running it: training (or continuing, or reusing) it, or refitting the last layer of its source run."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from earlyreadout.config import DEFAULTS, RunConfig, TrainSettings, build_config
from earlyreadout.train.engine import train
from earlyreadout.train.retrain import retrain
from earlyreadout.train.runs import RunDir

SEARCH_SEED = 0


@dataclass(frozen=True)
class Job:
    """One run: `key` names it in the log (unique within a log)."""

    key: str
    data: str
    method: str
    hp: dict[str, Any] = field(default_factory=dict)
    seed: int = SEARCH_SEED
    data_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    out: str | None = None  # keep the run here (e.g. a teacher other jobs read); None: a temporary folder
    source: str | None = None  # refit the last layer of this finished run instead of training


def named(section: Any, default: str | None) -> tuple[str | None, dict[str, Any]]:
    """(name, settings) of a config section given as a name or a mapping (no name: `default`)."""
    if isinstance(section, str):
        return section, {}
    section = dict(section or {})
    return section.pop("name", default), section


def job_of(key: str, raw: dict[str, Any]) -> Job:
    """The job of a raw config (sections method, data, model, train, out; validate it with `build_config`
    first, as sections other than these are not kept)."""
    method, hp = named(raw.get("method"), DEFAULTS["method"])
    data, options = named(raw.get("data"), DEFAULTS["data"])
    train_given = dict(raw.get("train") or {})
    seed = train_given.pop("seed", TrainSettings.seed)
    model = None
    if raw.get("model") is not None:
        name, settings = named(raw["model"], None)
        model = settings if name is None else {"name": name, **settings}
    out = None if raw.get("out") is None else str(raw["out"])
    return Job(key, data, method, hp, seed, options, train_given, model, out)


def run_config(job: Job, **local: Any) -> RunConfig:
    """The validated run config of `job` (raising ConfigError listing every problem); `local`: train settings
    of this machine (device, progress) that the job's own train settings override."""
    raw: dict[str, Any] = {"method": {"name": job.method, **job.hp}, "data": {"name": job.data, **job.data_options},
                           "train": {"seed": job.seed, **local, **job.train}}
    if job.out is not None:
        raw["out"] = job.out
    if job.model is not None:
        raw["model"] = job.model
    return build_config(raw)


def run(job: Job, log: Callable[[str], None] = print, **local: Any) -> dict[str, Any]:
    """The metrics.json of `job` in its folder (`job.out`): read when done, else trained (continuing an
    interrupted run) or, for a job with a source, refitted from that finished run."""
    folder = RunDir(job.out)
    if job.source is None:
        return folder.train_or_reuse(run_config(job, **local), train, log=log)
    return folder.read_metrics() if folder.done.exists() else retrain(job.source, job.method, folder.path, job.hp,
                                                                      log=log)


def scores(metrics: dict[str, Any]) -> dict[str, float]:
    """What a log row keeps of a run's metrics.json."""
    val, test = metrics["val"], metrics["test"]
    return {"val_worst_group": val["worst_group_accuracy"], "val_worst_class": val["worst_class_accuracy"],
            "test_worst_group": test["worst_group_accuracy"], "test_average": test["average_accuracy"],
            "test_adjusted": test["adjusted_accuracy"]}


def run_job(job: Job, device: str = "cpu") -> dict[str, Any]:
    """Run `job` silently on `device` with one thread (continuing its kept run if one was interrupted); its log
    row, which names the device."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        placed = replace(job, out=job.out or tmp + "/run")
        r = run(placed, log=lambda _m: None, progress=False, device=device)
        if job.source is not None:
            return {**asdict(job), "device": device, **scores(r), "retrain_time_s": r["last_layer"]["time_s"],
                    "last_layer": {k: v for k, v in r["last_layer"].items() if k != "source_run"}}
        rows = RunDir(placed.out).read_log()
    return {**asdict(job), "device": device, **scores(r), "best_epoch": r["best_epoch"], "train_time_s": r["train_time_s"],
            "val_worst_group_curve": [row["val"]["worst_group_accuracy"] for row in rows],
            "measures": [row.get("measures", {}) for row in rows]}
