"""Feature Sieve vs ERM where simplicity bias bites: dominoes and colored-digits at their default strength.

Per dataset: a small search over sieve settings (CANDIDATES, which include "no forgetting"), each trained
with seed 0 and scored by validation worst-group accuracy of its selected checkpoint; then ERM and the
chosen sieve with seeds 0, 1, 2 (the search's seed-0 run is reused). Test numbers are never used to choose.
Also reported, `sieve_biting`: the forgetting candidate whose forget steps bite hardest on the readout
(largest mean drop of readout train accuracy across a forget step, seed 0) - the `sieve` defaults.
Same model, data and epochs for both. Reduced sizes (SETUP) keep it within CPU minutes; the dataset's
shortcut strength (`correlation`) is its default. Results are appended as they come, so an interrupted
run resumes. Writes benchmarks/results/sieve_vs_erm.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.params import resolve
from earlyreadout.train.engine import train

OUT = Path(__file__).parent / "results" / "sieve_vs_erm.json"
SEEDS = (0, 1, 2)
SETUP = {
    "data_options": {"n_train": 2000, "n_val": 600, "n_test": 1200},
    "train": {"epochs": 4, "batch_size": 64, "device": "cpu"},
    "model": "small-cnn (width 32)",
    "selection": "checkpoint and settings by validation worst-group accuracy",
}
BASE = {"readout_layer": "block1", "readout_head": "conv", "readout_depth": 2, "readout_width": 64, "monitor": True}
CANDIDATES = [
    {**BASE, "forget_every": 0},  # no forgetting: ERM plus a readout that never shapes the network
    {**BASE, "mode": "three-pass", "forget_every": 1, "forget_lr": 0.1},
    {**BASE, "mode": "three-pass", "forget_every": 1, "forget_lr": 0.5, "readout_lr": 0.1},
    {**BASE, "mode": "three-pass", "readout_layer": "block2", "forget_every": 1, "forget_lr": 0.1},
    {**BASE, "mode": "three-pass", "readout_head": "linear", "forget_every": 1, "forget_lr": 1.0, "readout_lr": 0.1},
]


def key(method: str, hp: dict, seed: int) -> str:
    return json.dumps({"method": method, "hp": hp, "seed": seed}, sort_keys=True)


def run(data: str, method: str, hp: dict, seed: int, splits: dict, done: dict, tmp: str) -> dict:
    """Train one (method, settings, seed) unless its result is stored; store and return its summary."""
    k = key(method, hp, seed)
    if k not in done.setdefault(data, {}):
        cfg = build_config({"method": {"name": method, **hp}, "data": {"name": data, **SETUP["data_options"]},
                            "train": {**SETUP["train"], "seed": seed}, "out": f"{tmp}/{data}/{len(done[data])}"})
        r = train(cfg, log=lambda _m: None, splits=splits)
        log_rows = [json.loads(line)["train"] for line in (Path(cfg.out) / "log.jsonl").read_text().splitlines()]
        done[data][k] = {
            "val_worst_group": r["val"]["worst_group_accuracy"], "test_worst_group": r["test"]["worst_group_accuracy"],
            "test_average": r["test"]["average_accuracy"], "best_epoch": r["best_epoch"],
            "readout": [{m: round(row[m], 3) for m in row if "readout" in m} for row in log_rows],
        }
        save(data, runs=done[data])
        print(data, method, hp, seed, json.dumps(done[data][k]), flush=True)
    return done[data][k]


def bite(result: dict) -> float:
    """Mean drop of the readout's train accuracy across forget steps (epoch means): how hard forgetting bites."""
    drops = [r["readout_acc_before_forget"] - r["readout_acc_after_forget"] for r in result["readout"]]
    return statistics.mean(drops)


def save(data: str, runs: dict | None = None, summary: dict | None = None) -> None:
    """Update this dataset's entries in the results file (datasets may run in parallel processes)."""
    current = json.loads(OUT.read_text()) if OUT.exists() else {}
    current["setup"] = SETUP
    if runs is not None:
        current.setdefault("runs", {})[data] = runs
    if summary is not None:
        current.setdefault("datasets", {})[data] = summary
    OUT.write_text(json.dumps(current, indent=2) + "\n")


def stats(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values), "values": values}


def main() -> None:
    torch.set_num_threads(1)
    datasets = sys.argv[1:] or ["dominoes", "colored-digits"]
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    done = previous.get("runs", {})
    summary = previous.get("datasets", {})
    with tempfile.TemporaryDirectory() as tmp:
        for data in datasets:
            opts, _ = resolve(DATASETS.get(data).options, SETUP["data_options"], data)
            splits = load_splits(data, opts)
            search = [(hp, run(data, "sieve", hp, 0, splits, done, tmp)["val_worst_group"]) for hp in CANDIDATES]
            best = max(search, key=lambda item: item[1])[0]
            biting = max(CANDIDATES[1:], key=lambda hp: bite(run(data, "sieve", hp, 0, splits, done, tmp)))
            arms = {"erm": ("erm", {}), "sieve": ("sieve", best), "sieve_biting": ("sieve", biting)}
            final = {arm: [run(data, m, h, s, splits, done, tmp) for s in SEEDS] for arm, (m, h) in arms.items()}
            summary[data] = {
                "search": [{"hparams": hp, "val_worst_group": v} for hp, v in search],
                "selected_sieve_hparams": best,
                "biting_sieve_hparams": biting,
                **{m: {"test_worst_group": stats([r["test_worst_group"] for r in rs]),
                       "test_average": stats([r["test_average"] for r in rs])} for m, rs in final.items()},
            }
            s = summary[data]
            for arm in ("sieve", "sieve_biting"):
                s[f"{arm}_wga_gain_points"] = 100 * (s[arm]["test_worst_group"]["mean"]
                                                     - s["erm"]["test_worst_group"]["mean"])
            save(data, summary=summary[data])
            print(data, json.dumps(summary[data], indent=2), flush=True)


if __name__ == "__main__":
    main()
