"""Do early readouts flag the minority-group training instances of an ERM model? Per layer, early to late.

Trains ERM (engine.train, default data settings, `EPOCHS` epochs) on colored-digits and dominoes, then
fits readouts on the frozen layers and reports the confident-error ROC-AUC / average precision for
flagging minority-group training instances, under four readout protocols (linear / mlp head, fitted
on all of train or cross-fitted over 2 folds). Also the cost of scoring the train split with readouts
on every stage, as a ratio to one plain inference pass, measured in the same process.

    OMP_NUM_THREADS=1 python -m benchmarks.readout_auc   # -> benchmarks/results/readout_auc.{json,png}

Runs are kept in runs/benchmarks/readout_auc/<dataset> and reused when finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.explain.diagnose import MODEL_OUTPUT, diagnose_model
from earlyreadout.models import MODELS
from earlyreadout.models.inference import collect_logits
from earlyreadout.readout.fit import FoldedReadouts
from earlyreadout.train.engine import train
from earlyreadout.train.runs import RunDir, load_trained

DATASETS = ("colored-digits", "dominoes")
EPOCHS = 5
PROTOCOLS = (("linear", 2), ("linear", 1), ("mlp", 2), ("mlp", 1))  # (head, folds); the first is the default
READOUT_EPOCHS = 5


def trained_run(data: str) -> str:
    out = f"runs/benchmarks/readout_auc/{data}"
    cfg = build_config({"method": "erm", "data": data, "train": {"epochs": EPOCHS, "seed": 0}, "out": out})
    RunDir(out).train_or_reuse(cfg, train, log=print)
    return out


def scoring_cost(model: torch.nn.Module, layers: list[str], split, repeats: int = 3) -> dict[str, float]:
    """Median time of scoring `split` with fitted readouts on `layers`, over one plain inference pass."""
    example = split.tensors()[:2]
    plain, scored, fitted = [], [], []
    with FoldedReadouts(model, layers, split.n_classes, example, folds=2) as ro:
        for _ in range(repeats):
            t0 = time.perf_counter()
            collect_logits(model, model, split, 512)
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ro.score(split, 512, own_fold=True)
            scored.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ro.fit(split, READOUT_EPOCHS)
        fitted.append(time.perf_counter() - t0)
    base = statistics.median(plain)
    return {"score_over_plain_pass": statistics.median(scored) / base,
            "fit_over_plain_pass": fitted[0] / base,
            "fit_and_score_over_plain_pass": (fitted[0] + statistics.median(scored)) / base,
            "repeats": repeats, "layers": len(layers), "folds": 2}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.manual_seed(0)
    results: dict = {"epochs": EPOCHS, "readout_epochs": READOUT_EPOCHS, "datasets": {}}
    for data in DATASETS:
        run = trained_run(data)
        cfg, model, splits = load_trained(run)
        metrics = RunDir(run).read_metrics()
        layers = list(MODELS.get(cfg.model.name).stages)
        entry: dict = {"model": cfg.model.name, "layers": layers,
                       "erm_test_worst_group": metrics["test"]["worst_group_accuracy"],
                       "erm_test_average": metrics["test"]["average_accuracy"],
                       "erm_selected_epoch": metrics["best_epoch"] + 1, "selected_by": metrics["selected_by"],
                       "protocols": {}}
        for head, folds in PROTOCOLS:
            chosen = splits if (head, folds) == PROTOCOLS[0] else {"train": splits["train"]}
            summary, _ = diagnose_model(model, chosen, layers, READOUT_EPOCHS, head, folds, log=print)
            entry["minority_groups"] = summary["minority_groups"]
            per_layer = {}
            for layer, e in summary["layers"].items():
                per_layer[layer] = {"auc": e["flagging"]["auc"], "average_precision": e["flagging"]["average_precision"],
                                    "train_accuracy": e["splits"]["train"]["average_accuracy"],
                                    "train_minority_accuracy": _minority_accuracy(e, summary["minority_groups"])}
                if "test" in e["splits"]:
                    per_layer[layer]["test_worst_group"] = e["splits"]["test"]["worst_group_accuracy"]
            entry["protocols"][f"{head}, folds={folds}"] = per_layer
        entry["positive_rate"] = summary["layers"][layers[0]]["flagging"]["positive_rate"]
        entry["cost"] = scoring_cost(model, layers, splits["train"])
        default = entry["protocols"][f"{PROTOCOLS[0][0]}, folds={PROTOCOLS[0][1]}"]
        early = [default[layer]["auc"] for layer in layers[:2]]
        entry["best_early_auc"] = max(early)
        results["datasets"][data] = entry
        print(data, json.dumps({k: v for k, v in entry.items() if k != "protocols"}, indent=1))
    write_result(RESULTS / "readout_auc.json", "readout_auc", {"datasets": DATASETS, "epochs": EPOCHS,
                 "protocols": PROTOCOLS, "readout_epochs": READOUT_EPOCHS}, results)
    plot(results, RESULTS / "readout_auc.png")


def _minority_accuracy(entry: dict, minority: list[str]) -> float:
    groups = [g for g in entry["splits"]["train"]["groups"] if g["name"] in minority and g["n"]]
    return sum(g["accuracy"] * g["n"] for g in groups) / sum(g["n"] for g in groups)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results["datasets"]), figsize=(5 * len(results["datasets"]), 3.4), squeeze=False)
    for ax, (data, entry) in zip(axes[0], results["datasets"].items()):
        names = [*entry["layers"], MODEL_OUTPUT]
        for protocol, per_layer in entry["protocols"].items():
            ax.plot(range(len(names)), [per_layer[n]["auc"] for n in names], "o-", label=protocol)
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_ylim(0.4, 1.02)
        ax.axhline(0.5, color="grey", linewidth=0.7)
        ax.set_title(f"{data}: ERM, {results['epochs']} epochs", fontsize=9)
        ax.set_ylabel("minority-flagging ROC-AUC (train)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
