"""The label-free methods' defaults on text: spurious-text at its full default size, fresh seeds.

`python benchmarks/text_defaults.py`. ERM on group-balanced train (the ceiling), ERM, GroupDRO, and the
label-free methods with the defaults chosen on the image benchmarks (nothing is searched on text), seeds
1, 2, 3, checkpoints selected on validation worst-group accuracy. Writes
benchmarks/results/text_defaults.json (runs logged in text_defaults_runs.jsonl).
"""

from __future__ import annotations

import json

from protocol import FRESH_SEEDS, RESULTS, Job, run_jobs, summary

DATA = "spurious-text"
ROWS = {
    "ceiling": ("erm", {"correlation": 0.5}),
    "erm": ("erm", {}),
    "groupdro": ("groupdro", {}),
    "readout-reweight": ("readout-reweight", {}),
    "jtt": ("jtt", {}),
}


def main() -> None:
    jobs = [Job(f"{name}/seed{s}", DATA, method, {}, s, options) for name, (method, options) in ROWS.items()
            for s in FRESH_SEEDS]
    rows = run_jobs(jobs, RESULTS / "text_defaults_runs.jsonl")
    result = {name: {"method": method, "data_options": options,
                     **summary([rows[f"{name}/seed{s}"] for s in FRESH_SEEDS])}
              for name, (method, options) in ROWS.items()}
    result["protocol"] = (f"{DATA} at its full default size and training settings; method defaults; seeds 1, 2, 3; "
                          "checkpoint selected on validation worst-group accuracy; mean and std")
    (RESULTS / "text_defaults.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
