"""Where the models look on the built-in image benchmarks: Grad-CAM mass on the core region per method.

Dominoes puts the label's cause (a digit) in the bottom half and the shortcut (a coloured patch) in the top
half; colored-digits (patch mode) puts the shortcut in a corner patch. Both are known by construction, so
the fraction of Grad-CAM mass on each region measures what a model relies on. Per dataset, ERM, GroupDRO
(which sees group labels) and the Feature Sieve are trained with the same model, data and epochs (SETUP),
and explained on the test split at the last stage; `region_area` is what a uniform map would give.
`python -m benchmarks.gradcam_core_mass` writes benchmarks/results/gradcam_core_mass.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.explain.runs import explain_runs
from earlyreadout.params import resolve
from earlyreadout.train.engine import train

OUT = RESULTS / "gradcam_core_mass.json"
SETUP = {
    "data_options": {"n_train": 2000, "n_val": 600, "n_test": 1200},
    "train": {"epochs": 6, "batch_size": 64, "device": "cpu", "seed": 0},
    "model": "small-cnn (width 32), explained at block4",
    "n_mass": 300,
}
DATASETS_UNDER_TEST = {"dominoes": {}, "colored-digits": {"spurious": "patch"}}
METHODS = {"erm": {}, "groupdro": {}, "sieve": {"readout_layer": "block1", "forget_every": 1, "forget_weight": 1.0}}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(1)
    results: dict = {"setup": SETUP, "methods": METHODS, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for data, extra in DATASETS_UNDER_TEST.items():
            options, _ = resolve(DATASETS.get(data).options, {**SETUP["data_options"], **extra}, data)
            splits = load_splits(data, options)
            runs, rows = [], {}
            for method, hp in METHODS.items():
                cfg = build_config({"method": {"name": method, **hp}, "data": {"name": data, **options},
                                    "train": SETUP["train"], "out": f"{tmp}/{data}/{method}"})
                t0 = time.perf_counter()
                r = train(cfg, log=lambda _m: None, splits=splits)
                rows[method] = {"test_worst_group": r["test"]["worst_group_accuracy"],
                                "test_average": r["test"]["average_accuracy"], "train_s": time.perf_counter() - t0}
                runs.append(cfg.out)
                print(f"{data} {method}: test worst-group {rows[method]['test_worst_group']:.3f}", flush=True)
            explanation = explain_runs(runs, n=1, n_mass=SETUP["n_mass"], labels=list(METHODS))
            for record in explanation.summary["runs"]:
                row = rows[record["label"]]
                row["groups"] = record["groups"]
                for key in ("core_mass_group_mean", "spurious_mass_group_mean"):
                    if key in record:
                        row[key] = record[key]
                print(f"{data} {record['label']}: " + json.dumps({k: v for k, v in row.items() if "mass" in k}))
            results["datasets"][data] = {"options": extra, "region_area": explanation.summary["region_area"],
                                         "results": rows}
    write_result(OUT, "gradcam_core_mass", {"setup": SETUP, "datasets": DATASETS_UNDER_TEST, "methods": METHODS},
                 results)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
