"""bf16 mixed precision on CPU against fp32: accuracy within seed noise, and the time it costs or saves.

    python benchmarks/precision.py

ERM on colored-digits at its full default size, seeds 1-3, `train.precision` fp32 and bf16, run one after
the other in one process pool of one worker (so each pair shares the machine's load); test worst-group and
average accuracy of the checkpoint selected on validation (mean ± std) and the ratio of training times.
Writes benchmarks/results/precision.json (runs in precision_runs.jsonl, resumable).
"""

from __future__ import annotations

import json
import os
import statistics

from protocol import FRESH_SEEDS, RESULTS, Job, run_jobs, summary

PRECISIONS = ("fp32", "bf16")


def main() -> None:
    jobs = {(p, s): Job(f"colored-digits/erm/{p}/seed{s}", "colored-digits", "erm", {}, s, train={"precision": p})
            for s in FRESH_SEEDS for p in PRECISIONS}
    runs = run_jobs(jobs.values(), RESULTS / "precision_runs.jsonl", workers=1)
    table = {p: summary([runs[jobs[p, s].key] for s in FRESH_SEEDS]) for p in PRECISIONS}
    ratios = [runs[jobs["bf16", s].key]["train_time_s"] / runs[jobs["fp32", s].key]["train_time_s"] for s in FRESH_SEEDS]
    result = {"dataset": "colored-digits", "method": "erm", "cores": os.cpu_count(), "precision": table,
              "bf16_time_over_fp32": {"mean": statistics.fmean(ratios), "values": ratios},
              "note": "pairs run back to back on a shared 2-core machine; time ratios per seed pair"}
    (RESULTS / "precision.json").write_text(json.dumps(result, indent=2) + "\n")
    for p, row in table.items():
        print(f"{p}: test wga {row['test_worst_group']['mean']:.3f} ± {row['test_worst_group']['std']:.3f}, "
              f"average {row['test_average']['mean']:.3f} ± {row['test_average']['std']:.3f}")
    print(f"bf16 / fp32 training time: {statistics.fmean(ratios):.2f}")


if __name__ == "__main__":
    main()
