"""ERM vs JTT vs GroupDRO on colored-digits (default shortcut strength), three seeds each, fixed settings.

The baselines users compare against, untuned: JTT and GroupDRO use the settings in METHODS (no search),
every run selects its checkpoint by validation worst-group accuracy, and test numbers are only reported.
Same reduced sizes as benchmarks/sieve_vs_erm.py so the two can be read side by side; the number of
epochs is the optional argument (default 4), and each is stored under its own key
(`epochs<N>`) of benchmarks/results/baselines.json. Training times are wall-clock on a shared machine:
read their ratios as rough.
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

OUT = Path(__file__).parent / "results" / "baselines.json"
SEEDS = (0, 1, 2)
DATA = "colored-digits"
SETUP = {
    "data_options": {"n_train": 2000, "n_val": 600, "n_test": 1200},
    "train": {"epochs": 4, "batch_size": 64, "device": "cpu"},
    "model": "small-cnn (width 32)",
    "selection": "checkpoint by validation worst-group accuracy",
}
METHODS = {
    "erm": {},
    "jtt": {"erm_epochs": 1, "lambda_up": 20.0},
    "groupdro": {"eta": 0.1},
}


def main() -> None:
    torch.set_num_threads(1)
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else SETUP["train"]["epochs"]
    setup = {**SETUP, "train": {**SETUP["train"], "epochs": epochs}}
    options, problems = resolve(DATASETS.get(DATA).options, SETUP["data_options"], DATA)
    assert not problems, problems
    splits = load_splits(DATA, options)
    results = {"setup": setup, "dataset": DATA, "seeds": list(SEEDS), "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for method, hp in METHODS.items():
            runs = []
            for seed in SEEDS:
                cfg = build_config({"method": {"name": method, **hp}, "data": {"name": DATA, **options},
                                    "train": {**setup["train"], "seed": seed}, "out": f"{tmp}/{method}/{seed}"})
                runs.append(train(cfg, log=lambda _m: None, splits=splits))
            wga = [r["test"]["worst_group_accuracy"] for r in runs]
            avg = [r["test"]["average_accuracy"] for r in runs]
            results["methods"][method] = {
                "hparams": hp, "test_worst_group": wga, "test_average": avg,
                "test_worst_group_mean": statistics.fmean(wga), "test_worst_group_std": statistics.stdev(wga),
                "test_average_mean": statistics.fmean(avg),
                "val_worst_group": [r["val"]["worst_group_accuracy"] for r in runs],
                "train_time_ratio_to_erm": None,
                "train_time_s": [r["train_time_s"] for r in runs],
            }
            print(method, json.dumps(results["methods"][method]), flush=True)
    erm_time = statistics.fmean(results["methods"]["erm"]["train_time_s"])
    for entry in results["methods"].values():
        entry["train_time_ratio_to_erm"] = statistics.fmean(entry["train_time_s"]) / erm_time
    stored = json.loads(OUT.read_text()) if OUT.exists() else {}
    stored[f"epochs{epochs}"] = results
    OUT.write_text(json.dumps(stored, indent=2) + "\n")


if __name__ == "__main__":
    main()
