"""Hyperparameter search: an Optuna study around the training engine, shared by any number of workers.

Each trial trains one config in `<out>/trials/<number>` and is scored by the validation selection
metric (never test). The study lives in a database (default: `<out>/study.db`, SQLite; or a server such
as PostgreSQL) or a journal file on a shared disk (`journal:PATH`); every worker started with the same
storage and study name joins it, and the search stops once `trials` trials have finished. A trial
interrupted by Ctrl-C, SIGTERM or a dead machine is requeued with its parameters and resumes from its
last checkpoint, so re-running the command continues where it stopped.
"""

from __future__ import annotations

import inspect
import json
import random
import signal
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc

from earlyreadout.config import RunConfig, build_config, raw_config
from earlyreadout.data import load_splits
from earlyreadout.errors import ConfigError, UserError, file_error
from earlyreadout.experiments.job import job_of, run_config
from earlyreadout.io import write_json
from earlyreadout.methods import METHODS
from earlyreadout.metrics import mean_std, selection_metric
from earlyreadout.params import (
    Choice,
    IntRange,
    LogUniform,
    Param,
    Space,
    Uniform,
    checked,
    resolve,
)
from earlyreadout.train.engine import silent, train
from earlyreadout.train.runs import RunDir

SEARCH_OPTIONS: dict[str, Param] = {
    "space": Param({}, "per-hyperparameter ranges overriding the method's: [low, high], [low, high, log], "
                   "{choices: [...]}, or null to keep the configured value", kind=dict),
    "trials": Param(20, "finished trials the study aims for (over all workers)", low=1),
    "pruner": Param("median", "stop hopeless trials early by validation metric", choices=("none", "median")),
    "seeds": Param(0, "re-run the best trial's config with this many new seeds", low=0),
    "heartbeat": Param(60, "seconds between a running trial's heartbeats in a database study; a trial silent "
                       "for twice as long (its worker killed or lost) is retried by the next worker", low=1),
}
SUMMARY_METRICS = ("worst_group_accuracy", "adjusted_accuracy", "average_accuracy", "worst_class_accuracy")
JOURNAL = "journal:"
# the name of RDBStorage's stale-trial callback argument: `failed_trial_callback` before Optuna 4.9
STALE_CALLBACK = next(k for k in ("heartbeat_stale_trial_callback", "failed_trial_callback")
                      if k in inspect.signature(optuna.storages.RDBStorage).parameters)
MACHINE_LOCAL = (("train", "device"), ("train", "num_workers"), ("train", "progress"), ("data", "root"),
                 ("model", "weights"))


def parse_range(name: str, spec: Param, value: Any) -> tuple[Space | None, str | None]:
    """A search space from its config form; (None, problem) when the form or the ends are not allowed."""
    where = f"search.space.{name}"
    if value is None:
        return None, None
    if isinstance(value, dict) and set(value) == {"choices"} and isinstance(value["choices"], list):
        try:
            return Choice(tuple(spec.coerce(v) for v in value["choices"])), None
        except (ValueError, TypeError):
            return None, f"{where}: every choice must be {spec.describe()}; got {value['choices']!r}"
    log = isinstance(value, list) and len(value) == 3 and value[2] == "log"
    if not (isinstance(value, list) and (len(value) == 2 or log)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value[:2])):
        return None, (f"{where} must be [low, high], [low, high, log], {{choices: [...]}} or null; "
                      f"got {value!r}")
    try:
        low, high = spec.coerce(value[0]), spec.coerce(value[1])
    except (ValueError, TypeError):
        return None, f"{where}: both ends must be {spec.describe()}; got {value[:2]!r}"
    if low >= high or (log and low <= 0):
        return None, f"{where}: need low < high{' and low > 0 for a log range' if log else ''}; got {value!r}"
    if log:
        return LogUniform(float(low), float(high)), None
    return (IntRange(low, high) if spec.type is int else Uniform(float(low), float(high))), None


def build_space(method: str, overrides: dict[str, Any]) -> dict[str, Space]:
    """The method's declared search spaces, with the config's `search.space` entries replacing them."""
    method_cls = METHODS.get(method)
    hparams = method_cls.hparams
    space: dict[str, Space] = {k: p.search for k, p in hparams.items() if p.search is not None}
    problems: list[str] = []
    for name, value in overrides.items():
        if name not in hparams:
            _, unknown = resolve(hparams, {name: None}, f"method {method!r} (in search.space)")
            problems += unknown
            continue
        parsed, problem = parse_range(name, hparams[name], value)
        if problem:
            problems.append(problem)
        elif parsed is None:
            space.pop(name, None)
        else:
            space[name] = parsed
    if problems:
        raise ConfigError(problems)
    if not space:
        raise UserError(f"method {method!r} has nothing to search; add ranges under search.space in the config")
    return space


class Search:
    """One worker of a study: the base config, its space, the study and the data splits (loaded once)."""

    def __init__(self, raw: dict[str, Any], storage: str | None, study_name: str | None,
                 options: dict[str, Any]):
        raw = dict(raw)
        given = raw.pop("search", {}) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"section 'search' must be a mapping, got {given!r}")
        self.options = checked(SEARCH_OPTIONS, {**given, **options}, "search")
        self.base: RunConfig = build_config(raw)  # every problem of the config at once, before its sections split
        self.job = job_of("base", raw)  # the run every trial varies
        self.space = build_space(self.base.method.name, self.options["space"])
        self.out = Path(self.base.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.study = self.open_study(storage or f"sqlite:///{(self.out / 'study.db').resolve()}",
                                     study_name or self.out.resolve().name)
        self.splits = load_splits(self.base.data.name, self.base.data.settings)
        self.select_by, self.key = selection_metric(self.base.train.select_by, self.splits["val"])

    def fingerprint(self) -> str:
        """What must match for workers to share a study: the config and the space, less what may differ
        between machines (output folder, device, data loading, local paths of data and weights)."""
        cfg = self.base.to_dict()
        del cfg["out"]
        for section, key in MACHINE_LOCAL:
            cfg[section].pop(key, None)
        return json.dumps({"config": cfg, "space": {k: repr(v) for k, v in sorted(self.space.items())}},
                          sort_keys=True, default=str)

    def open_study(self, url: str, name: str) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(url, self.options["heartbeat"])
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if self.options["pruner"] == "median" \
            else optuna.pruners.NopPruner()
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=pruner,
                                    load_if_exists=True)
        mine = self.fingerprint()
        theirs = study.user_attrs.get("fingerprint")
        if theirs is None:
            study.set_user_attr("fingerprint", mine)
        elif theirs != mine:
            raise UserError(f"study {name!r} in {url} was started with another config or search space; "
                            "use the same config, or another --study name")
        return study

    def trial_config(self, params: dict[str, Any], out: Path, seed: int | None = None) -> RunConfig:
        """The run of a trial (method settings `params`, in `out`; re-runs of the best trial: another `seed`)."""
        job = replace(self.job, key=str(out), hp={**self.job.hp, **params}, out=str(out),
                      seed=self.job.seed if seed is None else seed)
        return run_config(job)

    def run_dir_of(self, trial: optuna.Trial) -> Path:
        """A trial's run directory: a requeued trial's is its predecessor's, whose checkpoint it continues."""
        origin = trial.user_attrs.get("resume_of")
        if origin is not None:
            before = [t for t in self.study.get_trials(deepcopy=False) if t.number == origin]
            previous = before[0].user_attrs.get("run_dir") if before else None
            if previous and RunDir(previous).last.is_file():
                return Path(previous)
        return self.out / "trials" / str(trial.number)

    def objective(self, trial: optuna.Trial) -> float:
        params = {name: space.suggest(trial, name) for name, space in self.space.items()}
        run_dir = self.run_dir_of(trial)
        trial.set_user_attr("run_dir", str(run_dir))
        cfg = self.trial_config(params, run_dir)

        def report(epoch: int, val: dict[str, Any]) -> None:
            trial.report(val[self.key], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val {self.select_by} {val[self.key]:.4f} after epoch {epoch + 1}")

        try:
            result = RunDir(run_dir).train_or_reuse(cfg, train, log=silent, splits=self.splits, on_epoch_end=report)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            requeue(self.study, trial)
            raise
        except optuna.TrialPruned:
            raise
        except Exception as e:
            trial.set_user_attr("error", repr(e))
            raise
        trial.set_user_attr("metrics", result)
        return result["val"][self.key]

    def finished(self) -> int:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def run(self) -> None:
        """Run trials until the study holds `trials` finished ones (other workers' included)."""
        while self.finished() < self.options["trials"]:
            self.study.optimize(self.objective, n_trials=1,
                                callbacks=[lambda _study, t: print(describe(t, self.select_by), flush=True)])
        completed = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        print(f"study {self.study.study_name!r}: {self.finished()} finished trials", flush=True)
        if completed:
            best = self.study.best_trial
            print(f"best: {describe(best, self.select_by)} in {best.user_attrs.get('run_dir')}", flush=True)

    def rerun_best(self) -> dict[str, Any]:
        """Train the best trial's config with `seeds` new seeds; write and return summary.json."""
        completed = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not completed:
            raise UserError(f"study {self.study.study_name!r} has no completed trial to re-run yet")
        best = self.study.best_trial
        base_seed = self.base.train.seed
        runs = []
        for seed in range(base_seed + 1, base_seed + 1 + self.options["seeds"]):
            cfg = self.trial_config(best.params, self.out / "best" / f"seed{seed}", seed)
            print(f"best trial {best.number}, seed {seed} -> {cfg.out}", flush=True)
            runs.append(RunDir(cfg.out).train_or_reuse(cfg, train, log=silent, splits=self.splits))
        summary = {
            "study": self.study.study_name, "best_trial": best.number, "params": best.params,
            "search_val": best.value, "selected_by": f"val {self.select_by}",
            "seeds": [r["seed"] for r in runs],
            "val": spread([r["val"] for r in runs]), "test": spread([r["test"] for r in runs]),
        }
        write_json(summary, self.out / "summary.json")
        return summary


def requeue(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> None:
    """Queue one retry (same parameters, continuing its checkpoint) of a trial cut short by a signal or a
    lost worker. Only the worker that marks the trial failed calls this, so it is retried once; a retry that
    is itself cut short is not retried again, so a trial that keeps killing its worker cannot loop."""
    if "resume_of" not in trial.user_attrs:
        study.enqueue_trial(trial.params, user_attrs={"resume_of": trial.number})


def open_storage(url: str, heartbeat_s: int, attempts: int = 5) -> optuna.storages.BaseStorage:
    """The study storage: a journal file (`journal:PATH`) or a database; workers starting together on a new
    database may race to create its tables (the loser retries and then finds them), and a server may be
    briefly unreachable. In a database, a trial whose heartbeat stops is failed and retried by `requeue`."""
    if url.startswith(JOURNAL):
        return open_journal(Path(url.removeprefix(JOURNAL)).expanduser())
    advice = ("if that file is not a study database (or is damaged), move it away or choose another --out"
              if url.startswith("sqlite") else "check the URL, the driver and that the server is reachable")
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
                                              grace_period=2 * heartbeat_s, **{STALE_CALLBACK: requeue})
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as e:
            if attempt == attempts - 1:
                raise file_error("study storage", url, f"cannot be opened ({str(e).splitlines()[0]})", advice) from None
            time.sleep(0.5 + random.random())
        except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as e:  # URL, driver, server
            raise file_error("study storage", url, f"cannot be opened ({str(e).splitlines()[0]})", advice) from None
    raise AssertionError("unreachable")


def open_journal(path: Path) -> optuna.storages.JournalStorage:
    """A study kept in one append-only journal file, for workers that share a file system but no database
    server (Optuna's file lock, which works on NFS)."""
    if not path.parent.is_dir():
        raise UserError(f"journal storage: folder {str(path.parent)!r} does not exist; create it on a file system "
                        "every worker mounts, or give another journal:PATH")
    try:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except (OSError, ValueError) as e:
        raise file_error("study journal", str(path), f"cannot be read ({str(e).splitlines()[0]})",
                         "move it away if it is not a study journal, or give another journal:PATH") from None


def spread(metrics: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, (sample) standard deviation and values of each summary metric over runs."""
    return {key: mean_std([m[key] for m in metrics]) for key in SUMMARY_METRICS}


def describe(trial: optuna.trial.FrozenTrial, select_by: str) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    value = "" if trial.value is None else f" val {select_by} {trial.value:.4f}"
    return f"trial {trial.number} {trial.state.name.lower()}{value}  ({params})"


def _stop_on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def search(config: str | None, overrides: list[str], storage: str | None = None, study: str | None = None,
           options: dict[str, Any] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Join (or create) the study of a config (YAML file, typed `values`, then `overrides`), run trials until
    it holds enough, then optionally re-run the best config with new seeds; returns the seed summary (None
    without `seeds`)."""
    raw = raw_config(config, overrides, values)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if main_thread else None
    try:
        with warnings.catch_warnings():  # heartbeats are an "experimental" Optuna feature
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            worker = Search(raw, storage, study, options or {})
            worker.run()
            return worker.rerun_best() if worker.options["seeds"] else None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
