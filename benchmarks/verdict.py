"""How often is the diagnosis's shortcut verdict right? ERM on the built-in benchmarks with a shortcut
(`correlation` 0.97, and a weaker one, 0.8) and without one (0.5), several seeds; the verdict from each run's
readouts, without attribute labels.

Per (dataset, correlation, seed): ERM for `EPOCHS` epochs (data seed = training seed, so every seed also draws
its own data), `diagnose` with its defaults, then the verdict (explain/verdict.py) from the per-instance train
scores in diagnosis.csv (where `diagnose` itself recorded a verdict, the two are compared). A verdict is right
when it says "shortcut" exactly on the runs with a correlation of at least `SHORTCUT_AT`. The rule's thresholds
were chosen on seed 0 at 0.97 and 0.5 (`TUNING_SEED`); the tally is also given for the other runs alone.

    OMP_NUM_THREADS=1 python -m benchmarks.verdict   # -> benchmarks/results/verdict.json

Runs are kept in runs/benchmarks/verdict/<dataset>/c<correlation>/s<seed> and reused when finished.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import torch

from benchmarks.protocol import RESULTS, ROOT, write_result
from earlyreadout.config import build_config
from earlyreadout.explain.diagnose import MODEL_OUTPUT, diagnose
from earlyreadout.explain.verdict import layer_evidence, verdict
from earlyreadout.io import read_json_file
from earlyreadout.train.engine import train
from earlyreadout.train.runs import RunDir

DATASETS = ("colored-digits", "dominoes", "small-digits", "shapes-on-texture", "spurious-text")
CORRELATIONS = (0.97, 0.8, 0.5)  # a shortcut, a weaker one, none
SEEDS = (0, 1, 2, 3, 4)
TUNING_SEED = 0
EPOCHS = 3
SHORTCUT_AT = 0.75  # a correlation at or above this is a shortcut to find


def run_path(data: str, correlation: float, seed: int) -> Path:
    return ROOT / "runs" / "benchmarks" / "verdict" / data / f"c{correlation}" / f"s{seed}"


def trained_and_diagnosed(data: str, correlation: float, seed: int) -> Path:
    """The ERM run of one setting, trained and diagnosed (both reused when already there)."""
    out = run_path(data, correlation, seed)
    cfg = build_config({"method": "erm", "data": {"name": data, "seed": seed, "correlation": correlation},
                        "train": {"epochs": EPOCHS, "seed": seed, "progress": False}, "out": str(out)})
    RunDir(out).train_or_reuse(cfg, train, log=lambda _m: None)
    if not (out / "diagnosis.csv").is_file():
        diagnose(out, log=lambda _m: None)
    return out


def train_rows(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Per readout layer, the train split's labels, predictions and margins from diagnosis.csv."""
    columns: dict[str, dict[str, list[float]]] = {}
    with (path / "diagnosis.csv").open() as f:
        for row in csv.DictReader(f):
            if row["split"] == "train" and row["layer"] != MODEL_OUTPUT:
                layer = columns.setdefault(row["layer"], {"y": [], "pred": [], "margin": []})
                for key in layer:
                    layer[key].append(float(row[key]))
    return {layer: {"y": torch.tensor(c["y"]).long(), "pred": torch.tensor(c["pred"]).long(),
                    "margin": torch.tensor(c["margin"])} for layer, c in columns.items()}


def measure(data: str, correlation: float, seed: int) -> dict[str, Any]:
    """One run's verdict, its evidence per layer, the ERM's test accuracies and the diagnosis's minority AUCs."""
    path = trained_and_diagnosed(data, correlation, seed)
    summary = read_json_file(path / "diagnosis.json", "diagnosis")
    metrics = RunDir(path).read_metrics()
    rows = train_rows(path)
    n_classes = 1 + max(int(r["y"].max()) for r in rows.values())
    evidence = [layer_evidence(layer, r["y"], r["pred"], r["margin"], n_classes) for layer, r in rows.items()]
    decided = verdict(evidence, str(path))
    return {"data": data, "correlation": correlation, "seed": seed, "shortcut": correlation >= SHORTCUT_AT,
            "verdict": decided.shortcut, "right": decided.shortcut == (correlation >= SHORTCUT_AT),
            "flagging_layer": decided.layer, "line": decided.line,
            "diagnose_verdict": (summary.get("verdict") or {}).get("shortcut"),
            "erm_test_worst_group": metrics["test"]["worst_group_accuracy"],
            "erm_test_average": metrics["test"]["average_accuracy"],
            "minority_auc": {layer: (e.get("flagging") or {}).get("auc") for layer, e in summary["layers"].items()},
            "layers": [e.to_dict() for e in evidence]}


def tally(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Right verdicts per dataset and correlation (all seeds, and the seeds the rule was not chosen on)."""
    out: dict[str, Any] = {}
    for data in dict.fromkeys(r["data"] for r in rows):
        for correlation in CORRELATIONS:
            cell = [r for r in rows if r["data"] == data and r["correlation"] == correlation]
            if not cell:
                continue
            held_out = [r for r in cell if not tuned(r)]
            out[f"{data} c={correlation}"] = {
                "runs": len(cell), "said_shortcut": sum(r["verdict"] for r in cell),
                "right": sum(r["right"] for r in cell),
                "held_out_runs": len(held_out), "held_out_right": sum(r["right"] for r in held_out)}
    out["all"] = {"runs": len(rows), "right": sum(r["right"] for r in rows),
                  "held_out_runs": sum(not tuned(r) for r in rows),
                  "held_out_right": sum(r["right"] for r in rows if not tuned(r))}
    recorded = [r for r in rows if r["diagnose_verdict"] is not None]
    out["diagnose_agrees"] = {"runs": len(recorded),
                              "same": sum(r["diagnose_verdict"] == r["verdict"] for r in recorded)}
    return out


def tuned(row: dict[str, Any]) -> bool:
    """Whether the rule's thresholds were chosen looking at this run."""
    return row["seed"] == TUNING_SEED and row["correlation"] in (0.97, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=list(DATASETS), help="benchmarks to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS), help="seeds (default 0 to 4)")
    parser.add_argument("--correlations", type=float, nargs="*", default=list(CORRELATIONS),
                        help="train correlations (default 0.97 0.8 0.5)")
    parser.add_argument("--finished-only", action="store_true", help="tally only the runs already trained and "
                        "diagnosed (the others are listed as missing in the result)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, missing = [], []
    for seed in args.seeds:
        for data in args.data:
            for correlation in args.correlations:
                if args.finished_only and not (run_path(data, correlation, seed) / "diagnosis.csv").is_file():
                    missing.append({"data": data, "correlation": correlation, "seed": seed})
                    continue
                rows.append(measure(data, correlation, seed))
                r = rows[-1]
                print(f"{data} c={correlation} seed {seed}: {'shortcut' if r['verdict'] else 'none'} "
                      f"({'right' if r['right'] else 'WRONG'})", flush=True)
    spec = {"datasets": args.data, "correlations": args.correlations, "seeds": args.seeds, "epochs": EPOCHS,
            "tuning_seed": TUNING_SEED, "shortcut_at": SHORTCUT_AT, "missing": missing}
    write_result(RESULTS / "verdict.json", "verdict", spec, {"tally": tally(rows), "runs": rows})


if __name__ == "__main__":
    main()
