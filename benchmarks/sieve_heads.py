"""Does the Feature Sieve bite harder with re-initialised heads, or with sieves on two stages at once?

    python benchmarks/sieve_heads.py [colored-digits dominoes]

Each variant changes the `sieve` defaults in one respect and trains at full default size on seeds 1-3
(test worst-group accuracy of the checkpoint selected on validation, mean ± std) beside the defaults
themselves; every epoch's fresh probes of the readout layer(s) (cross-fitted logistic regressions on
frozen val features, `probe_spurious`: the spurious attribute) show whether forgetting removed what a new
head can still read. The variant with the best mean validation worst-group accuracy is marked, and the one
best over both benchmarks is re-trained on seeds 4-6 (never used to choose) beside ERM at its defaults and
ERM at the sieve's learning rate (so the forgetting's share is not the learning rate's). Writes
benchmarks/results/sieve_heads.json (runs in sieve_heads_runs.jsonl, resumable).
"""

from __future__ import annotations

import json
import statistics
import sys

from protocol import FRESH_SEEDS, RESULTS, Job, run_jobs, summary

from earlyreadout.methods import METHODS

CONFIRM_SEEDS = (4, 5, 6)  # the chosen variant is judged again on seeds that took no part in choosing it

VARIANTS: dict[str, dict] = {
    "defaults": {},
    "fresh head every 20 steps (3 head steps per batch)": {"reinit_every": 20, "readout_steps": 3},
    "sieves on stage 1 and stage 2": {"readout_layer": "stage:1,stage:2"},
}


def last_probe(row: dict, key: str) -> float | None:
    """The last epoch's fresh-probe accuracy under `key` (None where the run logged none)."""
    values = [m.get(key) for m in row.get("measures", []) if m.get(key) is not None]
    return values[-1] if values else None


def main() -> None:
    datasets = sys.argv[1:] or ["colored-digits", "dominoes"]
    jobs = {(d, name, s): Job(f"{d}/{name}/seed{s}", d, "sieve", hp, s)  # datasets interleaved
            for name, hp in VARIANTS.items() for s in FRESH_SEEDS for d in datasets}
    runs = run_jobs(jobs.values(), RESULTS / "sieve_heads_runs.jsonl")
    out_file = RESULTS / "sieve_heads.json"
    result = json.loads(out_file.read_text()) if out_file.is_file() else {}
    for d in datasets:
        table = {}
        for name, hp in VARIANTS.items():
            rows = [runs[jobs[d, name, s].key] for s in FRESH_SEEDS]
            probes = {k: [last_probe(r, k) for r in rows]
                      for k in sorted({k for r in rows for m in r["measures"] for k in m if k.startswith("probe_")})}
            table[name] = {"settings": hp, **summary(rows),
                           "probe_last_epoch_mean": {k: statistics.fmean(v) for k, v in probes.items() if None not in v}}
        best = max(table, key=lambda n: table[n]["val_worst_group"]["mean"])
        result[d] = {"variants": table, "best_by_validation": best}
        for name, row in table.items():
            mark = "*" if name == best else " "
            print(f"{d:15s}{mark} {name:72s} test wga {row['test_worst_group']['mean']:.3f} ± "
                  f"{row['test_worst_group']['std']:.3f}  probe spurious {row['probe_last_epoch_mean']}")
    # the variant with the best validation score over both benchmarks, judged again on seeds it was not chosen
    # with, beside ERM on the same seeds
    winner = max(VARIANTS, key=lambda n: statistics.fmean(result[d]["variants"][n]["val_worst_group"]["mean"]
                                                          for d in datasets))
    arms = {"sieve": ("sieve", VARIANTS[winner]), "erm": ("erm", {}),
            "erm_at_the_sieve_lr": ("erm", {"lr": METHODS.get("sieve").hparams["lr"].default})}
    confirm = {(d, arm, s): Job(f"{d}/{arm}/confirm/seed{s}", d, method, hp, s)
               for d in datasets for arm, (method, hp) in arms.items() for s in CONFIRM_SEEDS}
    runs = run_jobs(confirm.values(), RESULTS / "sieve_heads_runs.jsonl")
    result["confirmation"] = {"variant": winner, "settings": VARIANTS[winner], "seeds": list(CONFIRM_SEEDS), **{
        d: {arm: summary([runs[confirm[d, arm, s].key] for s in CONFIRM_SEEDS]) for arm in arms} for d in datasets}}
    for d in datasets:
        print(f"{d}, seeds {CONFIRM_SEEDS}: " + "; ".join(
            f"{arm} {row['test_worst_group']['mean']:.3f} ± {row['test_worst_group']['std']:.3f}"
            for arm, row in result["confirmation"][d].items()))
    out_file.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
