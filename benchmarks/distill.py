"""Debiased distillation: does a DeDiER student keep more of a robust teacher's worst-group accuracy than KD?

For each dataset: train robust teachers (small-cnn width 32; every robust method that is registered, one
seed) and keep the one with the best validation worst-group accuracy; then students (small-cnn width 8):
`erm`, `kd`, `jtt-kd`, `dedier`. Each student method's hyperparameters are chosen on seed 0 by validation
worst-group accuracy from a small grid (below); the chosen setting is then run with 3 seeds and reported on
test (mean, std, fraction of the teacher's test worst-group accuracy). Also measured: online vs per-epoch
readout refresh (with and without weight normalisation), and per-epoch CPU time of each variant relative to KD
with cached teacher logits (the cache's gain). Reduced sizes for a shared 2-core
CPU (see SIZES / EPOCHS). Runs are kept under runs/benchmarks/distill, so an interrupted benchmark resumes.

    OMP_NUM_THREADS=1 python benchmarks/distill.py [dataset ...]   # -> benchmarks/results/distill.json
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from earlyreadout.config import build_config
from earlyreadout.distributed import DistInfo
from earlyreadout.methods import METHODS
from earlyreadout.train.engine import build_run, train

ROOT = Path("runs/benchmarks/distill")
RESULT = Path(__file__).parent / "results" / "distill.json"
SEEDS = (0, 1, 2)
ROBUST = ("groupdro", "jtt", "sieve")
# Fewer examples and a weaker correlation than the datasets' defaults: on 2,000 examples at the default
# correlations (0.97 / 0.99) no robust teacher beat 0.13 validation worst-group accuracy, and a teacher
# with nothing to pass on tests nothing.
DATA = {
    "colored-digits": {"n_train": 4000, "n_val": 800, "n_test": 1600, "size": 20, "correlation": 0.9},
    "dominoes": {"n_train": 4000, "n_val": 800, "n_test": 1600, "size": 16, "correlation": 0.95},
}
TEACHER_MODEL = {"name": "small-cnn", "width": 32}
STUDENT_MODEL = {"name": "small-cnn", "width": 8}
EPOCHS = {"teacher": 20, "student": 15}
BATCH = 64
GRIDS: dict[str, list[dict[str, Any]]] = {
    "erm": [{}],
    "kd": [{"temperature": t, "kd_weight": a} for t, a in ((3.0, 1.0), (1.0, 1.0), (3.0, 0.5))],
    "jtt-kd": [{"lambda_up": lam, "erm_epochs": 1} for lam in (5.0, 20.0, 50.0)],
    "dedier": [{"alpha": al, "beta": be, "readout_layer": layer}
               for al, be in ((0.05, 4.0), (0.5, 2.0)) for layer in ("stage:1", "stage:2")],
}


def run(data: str, method: str, hp: dict[str, Any], model: dict[str, Any], epochs: int, seed: int) -> dict[str, Any]:
    """Train one config (or read its finished run) and return its metrics."""
    raw = {"method": {"name": method, **hp}, "data": {"name": data, **DATA[data]}, "model": model,
           "train": {"epochs": epochs, "batch_size": BATCH, "seed": seed, "device": "cpu", "progress": False,
                     "select_by": "worst_group"}}
    key = hashlib.sha1(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:10]
    out = ROOT / data / f"{method}-{key}"
    if (out / "done").exists():
        return {**json.loads((out / "metrics.json").read_text()), "out": str(out)}
    resume = (out / "checkpoints" / "last.pt").exists()  # an interrupted run continues
    if not resume:
        shutil.rmtree(out, ignore_errors=True)
    result = train(build_config({**raw, "out": str(out)}), resume=resume, log=lambda _m: None)
    print(f"{data} {method} {hp} seed {seed}: val wga {result['val']['worst_group_accuracy']:.3f} "
          f"test wga {result['test']['worst_group_accuracy']:.3f} avg {result['test']['average_accuracy']:.3f}",
          flush=True)
    return {**result, "out": str(out)}


def stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def benchmark(data: str) -> dict[str, Any]:
    teachers = {}
    for method in ROBUST:
        if method in METHODS:
            r = run(data, method, {}, TEACHER_MODEL, EPOCHS["teacher"], 0)
            teachers[method] = {"out": r["out"], "val_worst_group": r["val"]["worst_group_accuracy"],
                                "test_worst_group": r["test"]["worst_group_accuracy"],
                                "test_average": r["test"]["average_accuracy"]}
    best = max(teachers, key=lambda m: teachers[m]["val_worst_group"])
    teacher_dir = teachers[best]["out"]
    teacher = {"method": best, "model": TEACHER_MODEL, **teachers[best]}

    students: dict[str, Any] = {}
    for method, grid in GRIDS.items():
        extra = {} if method == "erm" else {"teacher": teacher_dir}
        search = []
        for hp in grid:
            r = run(data, method, {**hp, **extra}, STUDENT_MODEL, EPOCHS["student"], 0)
            search.append({"hp": hp, "val_worst_group": r["val"]["worst_group_accuracy"],
                           "val_average": r["val"]["average_accuracy"]})
        chosen = max(search, key=lambda s: (s["val_worst_group"], s["val_average"]))["hp"]
        runs = [run(data, method, {**chosen, **extra}, STUDENT_MODEL, EPOCHS["student"], s) for s in SEEDS]
        wga = [r["test"]["worst_group_accuracy"] for r in runs]
        avg = [r["test"]["average_accuracy"] for r in runs]
        students[method] = {
            "chosen_hp": chosen, "search_seed0": search, "test_worst_group": wga, "test_average": avg,
            "test_worst_group_stats": stats(wga), "test_average_stats": stats(avg),
            "fraction_of_teacher_wga": statistics.mean(wga) / teacher["test_worst_group"],
            "train_time_s": [r["train_time_s"] for r in runs],
        }
    return {"teacher": teacher, "teachers_tried": teachers, "students": students,
            "extras": extras(data, teacher_dir, students)}


def cpu_seconds_per_epoch(data: str, method: str, hp: dict[str, Any]) -> float:
    """CPU time of this process for one training epoch (epoch 1, so DeDiER's refresh is included).

    Process CPU time, not wall time, so other jobs sharing the machine do not distort the ratios.
    """
    raw = {"method": {"name": method, **hp}, "data": {"name": data, **DATA[data]}, "model": STUDENT_MODEL,
           "train": {"batch_size": BATCH, "device": "cpu"}, "out": str(ROOT / "unused")}
    method_obj, _, loader = build_run(build_config(raw), torch.device("cpu"), DistInfo())
    method_obj.train()
    start = time.process_time()
    method_obj.on_epoch_start(1)
    loader.set_epoch(1)
    for step, batch in enumerate(loader):
        method_obj.update(batch, step)
    return time.process_time() - start


def dedier_variant(data: str, hp: dict[str, Any]) -> dict[str, Any]:
    runs = [run(data, "dedier", hp, STUDENT_MODEL, EPOCHS["student"], s) for s in SEEDS]
    wga = [r["test"]["worst_group_accuracy"] for r in runs]
    avg = [r["test"]["average_accuracy"] for r in runs]
    return {"hp": {k: v for k, v in hp.items() if k != "teacher"}, "test_worst_group": wga, "test_average": avg,
            "test_worst_group_stats": stats(wga), "test_average_stats": stats(avg)}


def extras(data: str, teacher_dir: str, students: dict[str, Any]) -> dict[str, Any]:
    """Online vs per-epoch refresh (same settings, 3 seeds), and per-epoch CPU costs relative to cached KD."""
    kd_hp = {**students["kd"]["chosen_hp"], "teacher": teacher_dir}
    dd_hp = {**students["dedier"]["chosen_hp"], "teacher": teacher_dir}
    cost = {
        "kd": cpu_seconds_per_epoch(data, "kd", kd_hp),
        "kd_uncached_teacher": cpu_seconds_per_epoch(data, "kd", {**kd_hp, "cache_teacher": False}),
        "dedier_epoch_refresh": cpu_seconds_per_epoch(data, "dedier", dd_hp),
        "dedier_online": cpu_seconds_per_epoch(data, "dedier", {**dd_hp, "refresh": "online"}),
    }
    return {
        "cpu_time_per_epoch_over_cached_kd": {k: v / cost["kd"] for k, v in cost.items()},
        "dedier_online": dedier_variant(data, {**dd_hp, "refresh": "online"}),
        "dedier_online_normalized": dedier_variant(
            data, {**dd_hp, "refresh": "online", "normalize_weights": True}),
    }


def main() -> None:
    torch.set_num_threads(1)
    datasets = sys.argv[1:] or list(DATA)
    for data in datasets:
        entry = {"sizes": DATA[data], "epochs": EPOCHS, "seeds": list(SEEDS),
                 "selected_by": "val worst_group (checkpoint and hyperparameters)",
                 "student_model": STUDENT_MODEL, **benchmark(data)}
        results = json.loads(RESULT.read_text()) if RESULT.exists() else {}  # other datasets may run alongside
        results[data] = entry
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({m: s["test_worst_group_stats"] for m, s in entry["students"].items()}))


if __name__ == "__main__":
    main()
