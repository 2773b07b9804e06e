"""Does `colored-digits` exhibit the shortcut? ERM's test worst-group vs average accuracy over seeds.

Writes benchmarks/results/erm_shortcut.json. Default dataset and training settings (the README's).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from earlyreadout.config import build_config
from earlyreadout.train.engine import train

SEEDS = (0, 1, 2)


def main() -> None:
    datasets = sys.argv[1:] or ["colored-digits", "dominoes", "spurious-text"]
    out = Path(__file__).parent / "results" / "erm_shortcut.json"
    results = json.loads(out.read_text()) if out.exists() else {}  # other datasets' results are kept
    with tempfile.TemporaryDirectory() as tmp:
        for data in datasets:
            runs = []
            for seed in SEEDS:
                cfg = build_config({"method": "erm", "data": data, "train": {"seed": seed},
                                    "out": f"{tmp}/{data}/{seed}"})
                runs.append(train(cfg, log=lambda _m: None))
            wga = [r["test"]["worst_group_accuracy"] for r in runs]
            avg = [r["test"]["average_accuracy"] for r in runs]
            results[data] = {
                "seeds": list(SEEDS), "epochs": runs[0]["epochs"], "selected_by": runs[0]["selected_by"],
                "test_worst_group": wga, "test_average": avg,
                "test_groups": [{g["name"]: g["accuracy"] for g in r["test"]["groups"]} for r in runs],
                "mean_gap_points": 100 * (statistics.mean(avg) - statistics.mean(wga)),
            }
            print(data, json.dumps(results[data], indent=2))
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
