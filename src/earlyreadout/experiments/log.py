"""The JSONL job log: every finished job appended at once as one row, so an interrupted study reruns only
what is not logged; jobs run in worker processes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from earlyreadout.experiments.job import Job, run_job


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
