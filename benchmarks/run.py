"""Run a training study from its spec: `python -m benchmarks.run benchmarks/specs/<study>.py`.

A spec is a small Python file that defines `STUDY`, an `earlyreadout.experiments.study.Study` (arms x
datasets x selection rules x seeds, candidates and how a winner is chosen). The driver trains the jobs its JSONL log does not hold yet
(sources first, then searches, then the chosen candidates on fresh seeds), so an interrupted study resumes
and a finished one regenerates its result in seconds; `--no-train` refuses to train and lists what is
missing instead. The result, `benchmarks/results/<study>.json`, has the shape of every result file:
{study, command, made_by (commit, dirty flag, library versions), spec, results}.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.protocol import RESULTS, ROOT, write_result
from earlyreadout.experiments.job import Job
from earlyreadout.experiments.log import read_log, run_jobs
from earlyreadout.experiments.plan import Plan
from earlyreadout.experiments.study import Study

SPECS = Path(__file__).resolve().parent / "specs"


def load_study(spec: str) -> tuple[Study, Path]:
    """The `STUDY` of a spec file (or of `benchmarks/specs/<name>.py` given a bare name), and its path."""
    path = Path(spec) if spec.endswith(".py") else SPECS / f"{spec}.py"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPECS.glob("*.py")))
        raise SystemExit(f"no spec {spec!r} (a file, or one of: {known})")
    module_spec = importlib.util.spec_from_file_location(f"spec_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except ValueError as e:  # a Study lists every problem of its declaration at once
        raise SystemExit(f"{path}: {e}") from None
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise SystemExit(f"{path} defines no STUDY (an earlyreadout.experiments.study.Study)")
    return study, path.resolve()


def runs_of(study: Study) -> Path:
    """Where a study keeps the runs other jobs read (teachers, refitted runs): runs/benchmarks/<study>."""
    return ROOT / "runs" / "benchmarks" / study.name


def run_stage(plan: Plan, jobs: list[Job], results: Path, workers: int, train: bool,
              device: str = "cpu") -> dict[str, dict[str, Any]]:
    """Run the stage's jobs that their logs do not hold (without `train`: refuse, listing them); every row
    logged in the study's logs, by key."""
    by_log: dict[str, dict[str, Job]] = defaultdict(dict)
    for job in jobs:
        by_log[plan.logs[job.key]][job.key] = job
    for log, todo in by_log.items():
        logged = read_log(results / log)
        missing = [k for k in todo if k not in logged]
        if missing and not train:
            shown = "".join(f"\n  {k}" for k in missing[:20]) + ("\n  ..." if len(missing) > 20 else "")
            raise SystemExit(f"--no-train: {len(missing)} job(s) of {plan.study.name!r} are not in "
                             f"{results / log}:{shown}")
        run_jobs(todo.values(), results / log, workers, device)
    rows: dict[str, dict[str, Any]] = {}
    for log in dict.fromkeys(plan.study.log_of(a) for a in plan.study.arms.values()):
        rows.update(read_log(results / log))
    return rows


def run_study(study: Study, results: Path = RESULTS, workers: int | None = None, train: bool = True,
              command: str | None = None, runs_root: Path | None = None, device: str = "cpu") -> dict[str, Any]:
    """Train what the logs under `results` lack on `device`, then write `results/<study>.json`; return what
    it wrote."""
    plan = Plan(study, runs_root or runs_of(study))
    workers = workers or study.workers
    run_stage(plan, plan.sources(), results, workers, train, device)
    rows = run_stage(plan, plan.searches(), results, workers, train, device)
    rows = run_stage(plan, plan.finals(rows), results, workers, train, device)
    return write_result(results / f"{study.name}.json", study.name, study.spec(), plan.results(rows), command)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", help="a spec file, or the name of one in benchmarks/specs/ (e.g. calibration)")
    p.add_argument("--workers", type=int, help="training processes at once, one thread each (default: the "
                   "spec's)")
    p.add_argument("--no-train", dest="train", action="store_false",
                   help="use logged runs only: stop, listing the jobs that would train, if any is missing")
    p.add_argument("--device", default="cpu",
                   help="where the jobs train: cpu (default; deterministic), cuda, cuda:1, ...; each logged "
                   "row names it")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="folder of the logs and the result (default: %(default)s)")
    args = p.parse_args(argv)
    study, path = load_study(args.spec)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    extra = ([] if args.results == RESULTS else ["--results", str(args.results)]) + \
        ([] if args.device == "cpu" else ["--device", args.device])
    command = " ".join(["python", "-m", "benchmarks.run", str(shown), *extra])
    document = run_study(study, args.results, args.workers, args.train, command, device=args.device)
    made_by = document["made_by"]
    print(f"wrote {args.results / (study.name + '.json')} ({command}; commit {made_by['commit'][:10]}"
          f"{', dirty' if made_by['dirty'] else ''})")


if __name__ == "__main__":
    main(sys.argv[1:])
