"""Training-time cost of the label-free methods relative to ERM, whole runs, measured in one process.

`python -m benchmarks.label_free_cost [--data NAME]` (default colored-digits). Full default size and epochs,
each method with its defaults (readout-reweight, JTT, sieve) and ERM, one thread; the methods are run
round-robin for ROUNDS rounds and the ratio uses the median of each method's training time (epoch loop
including JTT's first stage and readout-reweight's scoring; evaluation excluded), so load from other
processes hits every method alike. Writes benchmarks/results/label_free_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.params import resolve
from earlyreadout.train.engine import train

ROUNDS = 2
METHODS = ("erm", "readout-reweight", "jtt", "sieve")
TARGET = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="colored-digits", help="dataset (default: %(default)s)")
    data = parser.parse_args().data
    torch.set_num_threads(1)
    options, _ = resolve(DATASETS.get(data).options, {}, data)
    splits = load_splits(data, options)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            for m in METHODS:
                cfg = build_config({"method": m, "data": data, "train": {"device": "cpu", "progress": False},
                                    "out": f"{tmp}/{m}{r}"})
                times[m].append(train(cfg, log=lambda _m: None, splits=splits)["train_time_s"])
                print(m, f"{times[m][-1]:.1f} s", flush=True)
    erm = statistics.median(times["erm"])
    result = {"dataset": data, "rounds": ROUNDS, "threads": 1, "epochs": 10,
              "ratio_to_erm": {m: statistics.median(t) / erm for m, t in times.items() if m != "erm"},
              "target": f"every label-free method <= {TARGET}x ERM"}
    result["met"] = all(v <= TARGET for v in result["ratio_to_erm"].values())
    print(json.dumps(result, indent=2))
    write_result(RESULTS / "label_free_cost.json", "label_free_cost",
                 {"data": data, "methods": list(METHODS), "rounds": ROUNDS, "threads": 1}, result)


if __name__ == "__main__":
    main()
