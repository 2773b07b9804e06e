"""The protocol every full-size claim in benchmarks/ follows, as code shared by its scripts.

A job is one training run (method settings, data options, seed) at the dataset's full default size,
its checkpoint selected on validation worst-group accuracy. Jobs run in worker processes (one thread
each) and every finished job is appended at once to a JSONL log, so an interrupted benchmark rerun
skips what is done. Searches choose on validation only; a winner is re-trained on FRESH_SEEDS, never
on the seed it was chosen with; claims are mean ± std over those seeds.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SEARCH_SEED = 0
FRESH_SEEDS = (1, 2, 3)
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Job:
    """One run: `key` names it in the log (unique within a benchmark)."""

    key: str
    data: str
    method: str
    hp: dict[str, Any] = field(default_factory=dict)
    seed: int = SEARCH_SEED
    data_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    out: str | None = None  # keep the run here (e.g. a teacher other jobs read); None: a temporary folder


def run_job(job: Job) -> dict[str, Any]:
    """Train `job` (continuing its kept run if one was interrupted); its summary row with the val curve."""
    import torch

    from earlyreadout.config import build_config
    from earlyreadout.train.engine import train

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(job.out or tmp + "/run")
        raw = {"method": {"name": job.method, **job.hp}, "data": {"name": job.data, **job.data_options},
               "train": {"seed": job.seed, "progress": False, "device": "cpu", **job.train}, "out": str(out)}
        if job.model is not None:
            raw["model"] = job.model
        r = train(build_config(raw), resume=(out / "checkpoints" / "last.pt").exists(), log=lambda _m: None)
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {**asdict(job), "val_worst_group": r["val"]["worst_group_accuracy"],
            "test_worst_group": r["test"]["worst_group_accuracy"], "test_average": r["test"]["average_accuracy"],
            "test_adjusted": r["test"]["adjusted_accuracy"], "best_epoch": r["best_epoch"],
            "train_time_s": r["train_time_s"],
            "val_worst_group_curve": [row["val"]["worst_group_accuracy"] for row in rows],
            "measures": [row.get("measures", {}) for row in rows]}


def run_jobs(jobs: Iterable[Job], log: Path, workers: int = 2) -> dict[str, dict[str, Any]]:
    """Run the jobs not yet in `log` (appending each as it finishes); every job's row by key."""
    done = {}
    if log.exists():
        done = {row["key"]: row for row in map(json.loads, log.read_text().splitlines()) if row}
    todo = [j for j in jobs if j.key not in done]
    log.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(run_job, j) for j in todo]
        for future in as_completed(futures):
            row = future.result()
            done[row["key"]] = row
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{row['key']}: val wga {row['val_worst_group']:.3f}  test wga {row['test_worst_group']:.3f}",
                  flush=True)
    return done


def mean_std(values: list[float]) -> dict[str, Any]:
    """{'mean', 'std', 'values'}: the form every claim takes (std over seeds; 0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Test and validation worst-group accuracy, test average accuracy and train time over seeded rows."""
    return {"seeds": [r["seed"] for r in rows],
            "test_worst_group": mean_std([r["test_worst_group"] for r in rows]),
            "val_worst_group": mean_std([r["val_worst_group"] for r in rows]),
            "test_average": mean_std([r["test_average"] for r in rows]),
            "train_time_s": mean_std([r["train_time_s"] for r in rows])}


def best_by_validation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the highest validation worst-group accuracy (ties: the first listed)."""
    return max(rows, key=lambda r: r["val_worst_group"])
