"""Reference points for the built-in benchmarks: where "does nothing" and "best possible" lie.

`python benchmarks/calibration.py [dataset ...]` (default: colored-digits dominoes). At the full default
size, over seeds 1, 2, 3, checkpoint selected on validation worst-group accuracy: ERM on group-balanced
train (`data.correlation=0.5`, the ceiling), ERM, and GroupDRO without (the default) and with the
reference code's group-balanced sampling.
Writes benchmarks/results/calibration.json (runs logged as they finish in calibration_runs.jsonl).
"""

from __future__ import annotations

import json
import sys

from protocol import FRESH_SEEDS, RESULTS, Job, run_jobs, summary

REFERENCES = {
    "ceiling": ("erm", {}, {"correlation": 0.5}),
    "erm": ("erm", {}, {}),
    "groupdro": ("groupdro", {"balanced_sampling": False}, {}),
    "groupdro-balanced": ("groupdro", {"balanced_sampling": True}, {}),
}


def main() -> None:
    datasets = sys.argv[1:] or ["colored-digits", "dominoes"]
    jobs = [Job(f"{data}/{name}/seed{seed}", data, method, hp, seed, options)
            for data in datasets for name, (method, hp, options) in REFERENCES.items() for seed in FRESH_SEEDS]
    rows = run_jobs(jobs, RESULTS / "calibration_runs.jsonl")
    out = RESULTS / "calibration.json"
    stored = json.loads(out.read_text()) if out.exists() else {}
    for data in datasets:
        stored[data] = {name: {"method": method, "hparams": hp, "data_options": options,
                               **summary([rows[f"{data}/{name}/seed{s}"] for s in FRESH_SEEDS])}
                        for name, (method, hp, options) in REFERENCES.items()}
    stored["protocol"] = ("full default size and training settings; checkpoint selected on validation worst-group "
                          "accuracy; mean and std over seeds 1, 2, 3")
    out.write_text(json.dumps(stored, indent=2) + "\n")


if __name__ == "__main__":
    main()
