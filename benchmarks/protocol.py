"""The protocol every full-size claim in benchmarks/ follows, as code shared by the driver and the scripts.

A job is one training run (method settings, data options, seed) at the dataset's full default size,
its checkpoint selected on validation (worst-group accuracy unless the study says otherwise), or the
last-layer refit of another job's run. Jobs run in worker processes (one thread each) and every finished
job is appended at once to a JSONL log, so an interrupted benchmark rerun skips what is done. Searches
choose on validation only; a winner is re-trained on FRESH_SEEDS, never on the seed it was chosen with;
claims are mean ± std over those seeds. Every result file has one shape (`write_result`): the stamp of
the code that made it (commit, dirty flag, library versions), the command that makes it, the spec, and
the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import earlyreadout
from earlyreadout.metrics import mean_std
from earlyreadout.train.runs import RunDir, versions

SEARCH_SEED = 0
FRESH_SEEDS = (1, 2, 3)
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("test_worst_group", "val_worst_group", "test_average", "train_time_s", "retrain_time_s")


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


def scores(metrics: dict[str, Any]) -> dict[str, float]:
    """What a log row keeps of a run's metrics.json."""
    val, test = metrics["val"], metrics["test"]
    return {"val_worst_group": val["worst_group_accuracy"], "val_worst_class": val["worst_class_accuracy"],
            "test_worst_group": test["worst_group_accuracy"], "test_average": test["average_accuracy"],
            "test_adjusted": test["adjusted_accuracy"]}


def run_job(job: Job, device: str = "cpu") -> dict[str, Any]:
    """Train `job` on `device` (continuing its kept run if one was interrupted), or refit its source; its
    summary row, which names the device."""
    import torch

    from earlyreadout.config import build_config
    from earlyreadout.train.engine import train
    from earlyreadout.train.retrain import retrain

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(job.out or tmp + "/run")
        if job.source is not None:
            r = retrain(job.source, job.method, run.path, job.hp, log=lambda _m: None)
            return {**asdict(job), "device": device, **scores(r), "retrain_time_s": r["last_layer"]["time_s"],
                    "last_layer": {k: v for k, v in r["last_layer"].items() if k != "source_run"}}
        raw = {"method": {"name": job.method, **job.hp}, "data": {"name": job.data, **job.data_options},
               "train": {"seed": job.seed, "progress": False, "device": device, **job.train},
               "out": str(run.path)}
        if job.model is not None:
            raw["model"] = job.model
        r = run.train_or_reuse(build_config(raw), train, log=lambda _m: None)
        rows = run.read_log()
    return {**asdict(job), "device": device, **scores(r), "best_epoch": r["best_epoch"], "train_time_s": r["train_time_s"],
            "val_worst_group_curve": [row["val"]["worst_group_accuracy"] for row in rows],
            "measures": [row.get("measures", {}) for row in rows]}


def read_log(log: Path) -> dict[str, dict[str, Any]]:
    """Every logged row by key ({} before the first)."""
    if not log.exists():
        return {}
    return {row["key"]: row for row in map(json.loads, log.read_text().splitlines()) if row}


def run_jobs(jobs: Iterable[Job], log: Path, workers: int = 2, device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Run the jobs not yet in `log` on `device`, in the order of their keys (so an interrupted study has
    whole datasets done), appending each as it finishes; every logged row by key."""
    done = read_log(log)
    todo = sorted((j for j in jobs if j.key not in done), key=lambda j: j.key)
    if not todo:
        return done
    log.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(run_job, j, device) for j in todo]
        for future in as_completed(futures):
            row = future.result()
            done[row["key"]] = row
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{row['key']}: val wga {row['val_worst_group']:.3f}  "
                  f"test wga {row['test_worst_group']:.3f}", flush=True)
    return done


def last_measure(row: dict[str, Any], name: str) -> float | None:
    """The last epoch's value of a logged measure (e.g. a fresh probe's accuracy); None where none is."""
    values = [m[name] for m in row.get("measures", []) if m.get(name) is not None]
    return values[-1] if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeded rows of every metric they all hold (worst-group and average accuracy, times,
    the last epoch's fresh probes)."""
    out: dict[str, Any] = {"seeds": [r.get("seed") for r in rows]}
    for metric in METRICS:
        if all(metric in r for r in rows):
            out[metric] = mean_std([r[metric] for r in rows])
    probes = sorted({k for r in rows for m in r.get("measures", []) for k in m if k.startswith("probe_")})
    for name in probes:
        values = [last_measure(r, name) for r in rows]
        if None not in values:
            out[f"{name}_last_epoch"] = mean_std(values)
    return out


def code_stamp() -> dict[str, Any]:
    """The commit of the checkout whose earlyreadout is imported (`dirty`: with uncommitted changes to its
    code or benchmarks), library versions and the time."""
    def git(folder: Path, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    top = git(Path(earlyreadout.__file__).resolve().parent, "rev-parse", "--show-toplevel")
    commit = git(Path(top), "rev-parse", "HEAD") if top else ""
    paths = ("src", "benchmarks", ":!benchmarks/results")
    changed = git(Path(top), "status", "--porcelain", "--", *paths) if top else ""
    return {"commit": commit or "unknown", "dirty": bool(changed), "versions": versions(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def command_line() -> str:
    """The command that made this process's result, as run from the repository root (`python -m benchmarks.NAME`
    for a script of this package)."""
    script = Path(sys.argv[0]).resolve()
    shown = "-m " + ".".join(script.relative_to(ROOT).with_suffix("").parts) if script.is_relative_to(ROOT) \
        else str(script)
    return " ".join(["python", shown, *sys.argv[1:]])


def write_result(path: Path, study: str, spec: dict[str, Any], results: dict[str, Any],
                 command: str | None = None) -> dict[str, Any]:
    """Write one result file in the shape every result has (`command`: what makes it; default this process's
    command line); return what was written."""
    document = {"study": study, "command": command or command_line(), "made_by": code_stamp(), "spec": spec,
                "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return document
