"""Summary of a sieve search: every trial's setting, validation score and fresh-probe curves, and the best
setting on fresh seeds beside ERM.

    earlyreadout search -c benchmarks/configs/<dataset>-sieve-search.yaml --trials 40 --seeds 3
    python benchmarks/sieve_search_summary.py runs/search/<dataset>-sieve

Each trial's log holds, per epoch, fresh probes of the aux layer on val (`probe_spurious`: the spurious
attribute, `probe_core`: the label; cross-fitted logistic regressions on the frozen features). Trials
with `forget_every=0` are ERM plus an idle readout: their probes are ERM's. Because the search also tunes
the main learning rate, ERM is re-trained at the winner's learning rate on the same fresh seeds. Writes
benchmarks/results/sieve_search_<dataset>.json and sieve_search_<dataset>.png.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib
import yaml
from protocol import RESULTS, Job, run_jobs, summary

from earlyreadout.readout.sieve import RENAMED

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SPACE = ("forget_every", "forget_lr", "readout_lr", "lr", "readout_layer", "readout_head", "readout_width", "readout_depth",
         "readout_steps", "forget_steps", "mode", "forget_weight")


def trial_rows(search_dir: Path) -> list[dict]:
    """One row per trial directory: its searched settings, how far it ran, its scores and probe curves."""
    rows = []
    for trial in sorted((search_dir / "trials").iterdir(), key=lambda p: int(p.name)):
        log = trial / "log.jsonl"
        if not log.is_file():
            continue
        epochs = [json.loads(line) for line in log.read_text().splitlines() if line]
        if not epochs:
            continue
        saved = yaml.safe_load((trial / "config.yaml").read_text())["method"]
        method = {RENAMED.get(k, k): v for k, v in saved.items()}  # searches run before the aux_* renames
        metrics = json.loads((trial / "metrics.json").read_text()) if (trial / "metrics.json").is_file() else None
        spurious = [e.get("measures", {}).get("probe_spurious") for e in epochs]
        core = [e.get("measures", {}).get("probe_core") for e in epochs]
        rows.append({"trial": int(trial.name), "settings": {k: method[k] for k in SPACE if k in method},
                     "finished": metrics is not None, "epochs": len(epochs),
                     "val_worst_group": max(e["val"]["worst_group_accuracy"] for e in epochs),
                     "test_worst_group": metrics["test"]["worst_group_accuracy"] if metrics else None,
                     "probe_spurious": spurious, "probe_core": core})
    return rows


def main() -> None:
    search_dir = Path(sys.argv[1])
    dataset = yaml.safe_load((search_dir / "trials" / "0" / "config.yaml").read_text())["data"]["name"]
    rows = trial_rows(search_dir)
    idle = [r for r in rows if r["settings"]["forget_every"] == 0]
    forgetting = [r for r in rows if r["settings"]["forget_every"] > 0]
    last = [r["probe_spurious"][-1] for r in forgetting if r["probe_spurious"][-1] is not None]
    calibration = json.loads((RESULTS / "calibration.json").read_text()).get(dataset, {})
    summary_file = search_dir / "summary.json"
    best_seeds = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    erm_same_lr = None
    if best_seeds is not None:  # is the gain the sieve's, or its learning rate's? ERM at the winner's lr
        lr = best_seeds["params"]["lr"]
        jobs = [Job(f"{dataset}/erm/lr{lr}/seed{s}", dataset, "erm", {"lr": lr}, s) for s in best_seeds["seeds"]]
        runs = run_jobs(jobs, RESULTS / "sieve_search_runs.jsonl")
        erm_same_lr = {"lr": lr, **summary([runs[j.key] for j in jobs])}
    result = {
        "dataset": dataset, "trials": len(rows), "finished": sum(r["finished"] for r in rows),
        "best_on_fresh_seeds": best_seeds,
        "erm_fresh_seeds": calibration.get("erm"),
        "erm_at_the_best_lr_fresh_seeds": erm_same_lr,
        "probe_spurious_last_epoch": {
            "no_forgetting_mean": statistics.fmean(r["probe_spurious"][-1] for r in idle) if idle else None,
            "forgetting_min": min(last) if last else None, "forgetting_mean": statistics.fmean(last) if last else None,
        },
        "rows": rows,
    }
    out = RESULTS / f"sieve_search_{dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    best = max(rows, key=lambda r: r["val_worst_group"])
    for ax, key in zip(axes, ("probe_spurious", "probe_core")):
        for r in rows:
            style = {"color": "black", "lw": 1.5} if r in idle else {"color": "tab:blue", "alpha": 0.3, "lw": 0.8}
            ax.plot(range(1, r["epochs"] + 1), r[key], **style)
        ax.plot(range(1, best["epochs"] + 1), best[key], color="tab:red", lw=2, label=f"best trial ({best['trial']})")
        ax.plot([], [], color="black", label="no forgetting (ERM)")
        ax.plot([], [], color="tab:blue", alpha=0.5, label="forgetting trials")
        ax.set_title(f"{dataset}: fresh probe on the aux layer, {key.removeprefix('probe_')}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("held-out probe accuracy (val)")
        ax.set_ylim(0.4, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"sieve_search_{dataset}.png", dpi=110)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
