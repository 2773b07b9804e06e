"""Debiased distillation at full size: KD, JTT-KD and DeDiER students of a robust teacher, 3 fresh seeds.

`python benchmarks/distill_full_size.py [dataset ...]` (default: colored-digits dominoes). Per dataset, at
the full default size and training settings: a GroupDRO teacher (small-cnn width 32, seed 0, kept under
runs/benchmarks/distill_full_size/), then students (small-cnn width 16) with each method's defaults, seeds
1, 2, 3, checkpoints selected on validation worst-group accuracy: ERM, KD, JTT-KD, DeDiER (the reference's
single readout, re-fit each epoch) and DeDiER with cross-fitted readouts (folds=2). No setting is searched.
Writes benchmarks/results/distill_full_size.json (runs logged in distill_full_size_runs.jsonl).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from protocol import FRESH_SEEDS, RESULTS, Job, run_jobs, summary

ROOT = Path("runs/benchmarks/distill_full_size").resolve()
TEACHER_MODEL = {"name": "small-cnn", "width": 32}
TEACHER_HP = {"balanced_sampling": False}
STUDENT_MODEL = {"name": "small-cnn", "width": 16}
STUDENTS = {"erm": ("erm", {}), "kd": ("kd", {}), "jtt-kd": ("jtt-kd", {}), "dedier": ("dedier", {}),
            "dedier-crossfit": ("dedier", {"folds": 2})}


def main() -> None:
    datasets = sys.argv[1:] or ["colored-digits", "dominoes"]
    log = RESULTS / "distill_full_size_runs.jsonl"
    teachers = {d: Job(f"{d}/teacher", d, "groupdro", TEACHER_HP, 0, model=TEACHER_MODEL,
                       out=str(ROOT / d / "teacher")) for d in datasets}
    rows = run_jobs(teachers.values(), log)
    students = []
    for d in datasets:
        for name, (method, hp) in STUDENTS.items():
            hp = {**hp, "teacher": teachers[d].out} if method != "erm" else hp
            students += [Job(f"{d}/{name}/seed{s}", d, method, hp, s, model=STUDENT_MODEL) for s in FRESH_SEEDS]
    rows = run_jobs(students, log)
    out = RESULTS / "distill_full_size.json"
    stored = json.loads(out.read_text()) if out.exists() else {}
    for d in datasets:
        teacher = rows[f"{d}/teacher"]
        stored[d] = {"teacher": {"method": "groupdro", "hparams": TEACHER_HP, "model": TEACHER_MODEL,
                                 "test_worst_group": teacher["test_worst_group"],
                                 "test_average": teacher["test_average"]},
                     "students": {name: {"method": method, "hparams": hp, "model": STUDENT_MODEL,
                                         **summary([rows[f"{d}/{name}/seed{s}"] for s in FRESH_SEEDS])}
                                  for name, (method, hp) in STUDENTS.items()}}
    stored["protocol"] = ("full default size; teacher GroupDRO seed 0; students seeds 1, 2, 3 with each method's "
                          "defaults; checkpoints selected on validation worst-group accuracy; mean and std")
    out.write_text(json.dumps(stored, indent=2) + "\n")


if __name__ == "__main__":
    main()
