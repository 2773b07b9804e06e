"""Shortcut diagnosis: early readouts on a trained model's layers, and how well their confident errors
flag the training instances whose label the spurious attribute contradicts (the minority groups).

Writes into the run directory (or `out`): `diagnosis.json` (per layer: readout accuracy overall and per
group on every split; ROC-AUC and average precision of the confident-error score for flagging minority
training instances, which needs attribute labels; what each readout flags without them, and the shortcut
verdict: explain/verdict.py), `diagnosis.csv` (one row per instance and layer) and two PNG plots.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earlyreadout.data.base import GroupedDataset
from earlyreadout.distributed import DEVICE_OPTION, resolve_device
from earlyreadout.errors import UserError
from earlyreadout.explain.diagnose_plots import plot_diagnosis
from earlyreadout.explain.verdict import LayerEvidence, describe, layer_evidence, verdict
from earlyreadout.io import write_json
from earlyreadout.metrics import evaluate_logits
from earlyreadout.models import model_layers
from earlyreadout.params import Param, checked
from earlyreadout.readout.fit import FoldedReadouts
from earlyreadout.readout.heads import HEAD_FAMILIES
from earlyreadout.readout.scores import probability_outputs
from earlyreadout.train.runs import check_layers, load_trained

CSV_COLUMNS = ("split", "idx", "y", "a", "g", "layer", "pred", "margin", "correct", "score")
MODEL_OUTPUT = "model output"  # the model's own final prediction, reported next to the readouts

DIAGNOSE_OPTIONS: dict[str, Param] = {
    "layers": Param(None, "module path to read out (repeatable; default: the model's stages)", nullable=True,
                    kind=list),
    "epochs": Param(5, "epochs of readout training on frozen features", low=1),
    "head": Param("linear", "readout head family", choices=HEAD_FAMILIES),
    "folds": Param(2, "cross-fitting folds: each training instance is scored by heads that never saw it "
                   "(1: fit and score on all)", low=1),
    "lr": Param(1e-2, "learning rate of the readout heads", low=0, open_low=True),
    "batch_size": Param(256, "readout training batch size", low=1),
    "seed": Param(0, "seed of the folds and the heads' initialisation", low=0),
    "minority_ratio": Param(0.5, "a group is a minority when its training count is below this fraction of the "
                            "largest group with its label", low=0, high=1, open_low=True),
    "device": DEVICE_OPTION,
}
_D = {k: p.default for k, p in DIAGNOSE_OPTIONS.items()}  # the library functions' defaults: the declared ones


def minority_groups(train: GroupedDataset, ratio: float = _D["minority_ratio"]) -> list[int]:
    """The groups whose training count is below `ratio` times that of the largest group with the same label.

    Within a label, the attribute value most examples share is the one the shortcut predicts; groups much
    rarer than it (Waterbirds: waterbirds on land, landbirds on water; CelebA: blond men; colored-digits:
    digits in the other class's colour) are the instances the spurious feature contradicts. Groups of
    comparable size (CelebA's non-blond women and men) are not. Empty without attribute labels.
    """
    if not train.has_attributes:
        return []
    counts = train.group_counts()
    minority = []
    for g in range(train.n_groups):
        label, _ = train.group_of(g)
        same_label = [h for h in range(train.n_groups) if train.group_of(h)[0] == label]
        largest = max(int(counts[h]) for h in same_label)
        if 0 < counts[g] < ratio * largest:
            minority.append(g)
    return minority


def flagging_quality(score: torch.Tensor, positive: torch.Tensor) -> dict[str, float | None]:
    """ROC-AUC and average precision of `score` for finding the `positive` instances (None if one class)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    positive = positive.bool()
    if positive.all() or not positive.any():
        return {"auc": None, "average_precision": None}
    y, s = positive.numpy(), score.double().numpy()
    return {"auc": float(roc_auc_score(y, s)), "average_precision": float(average_precision_score(y, s)),
            "positive_rate": float(positive.double().mean())}


def split_summary(probs: torch.Tensor, split: GroupedDataset) -> dict[str, Any]:
    """Readout accuracy overall and per group (the engine's split metrics) plus mean score per group."""
    metrics = evaluate_logits(probs.clamp_min(1e-12).log(), split)
    score = probability_outputs(probs, split.y)["confident_error"]
    g = split.g
    for entry, k in zip(metrics["groups"], range(split.n_groups)):
        entry["mean_score"] = float(score[g == k].mean()) if entry["n"] else None
    return {k: metrics[k] for k in ("n", "average_accuracy", "worst_group_accuracy", "adjusted_accuracy", "groups")}


def diagnose_model(model: nn.Module, splits: dict[str, GroupedDataset], layers: list[str], epochs: int = _D["epochs"],
                   head: str = _D["head"], folds: int = _D["folds"], lr: float = _D["lr"],
                   batch_size: int = _D["batch_size"], seed: int = _D["seed"],
                   minority_ratio: float = _D["minority_ratio"], log: Callable[[str], None] = print,
                   run: str = "RUN") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, per-instance rows): fit readouts on `splits["train"]` of a frozen model, score every split,
    and give the shortcut verdict from what the readouts flag on train (no attribute labels read; `run`: the
    run directory its next command names). Defaults (and meanings) are those of DIAGNOSE_OPTIONS."""
    train = splits["train"]
    example = torch.stack([train[0]["x"], train[1]["x"]]).to(next(model.parameters()).device)
    t0 = time.perf_counter()
    with FoldedReadouts(model, layers, train.n_classes, example, folds, head, seed=seed) as readouts:
        losses = readouts.fit(train, epochs, lr, batch_size)
        fit_s = time.perf_counter() - t0
        log(f"fitted {len(layers)} readout(s) x {folds} fold(s) in {fit_s:.1f}s; last loss {losses[-1]:.4f}")
        scored = {name: readouts.score(split, own_fold=name == "train") for name, split in splits.items()}
    minority = minority_groups(train, minority_ratio)
    positive = torch.isin(train.g, torch.tensor(minority, dtype=torch.long))
    summary: dict[str, Any] = {
        "layers": {}, "head": head, "epochs": epochs, "folds": folds, "lr": lr, "seed": seed,
        "group_names": train.group_names, "minority_ratio": minority_ratio,
        "minority_groups": [train.group_names[g] for g in minority],
        "train_loss_by_epoch": losses, "fit_time_s": fit_s,
    }
    rows: list[dict[str, Any]] = []
    evidence: list[LayerEvidence] = []
    for layer in [*layers, MODEL_OUTPUT]:
        entry: dict[str, Any] = {"splits": {}}
        for name, split in splits.items():
            probs = scored[name][0][layer] if layer != MODEL_OUTPUT else scored[name][1].softmax(1)
            entry["splits"][name] = split_summary(probs, split)
            outputs = probability_outputs(probs, split.y)
            if name == "train" and minority:
                entry["flagging"] = flagging_quality(outputs["confident_error"], positive)
            if name == "train" and layer != MODEL_OUTPUT:
                evidence.append(layer_evidence(layer, split.y, outputs["pred"], outputs["margin"], split.n_classes))
                entry["evidence"] = evidence[-1].to_dict()
            rows.extend(_rows(name, layer, split, outputs))
        summary["layers"][layer] = entry
        flag = entry.get("flagging", {})
        log(f"{layer:>16}: train acc {entry['splits']['train']['average_accuracy']:.3f}"
            + (f"  minority AUC {flag['auc']:.3f}  AP {flag['average_precision']:.3f}" if flag.get("auc") else ""))
        if layer != MODEL_OUTPUT:
            log(f"{'':>18}{describe(evidence[-1], train.class_names)}")
    decided = verdict(evidence, run)
    summary["verdict"] = decided.to_dict()
    log(f"verdict: {decided.line}")
    return summary, rows


def _rows(split_name: str, layer: str, split: GroupedDataset, outputs: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    a = split.a if split.a is not None else torch.full_like(split.y, -1)
    return [
        {"split": split_name, "idx": i, "y": y, "a": at, "g": g, "layer": layer, "pred": p, "margin": round(m, 6),
         "correct": int(c), "score": round(s, 6)}
        for i, (y, at, g, p, m, c, s) in enumerate(zip(
            split.y.tolist(), a.tolist(), split.g.tolist(), outputs["pred"].tolist(), outputs["margin"].tolist(),
            outputs["correct"].tolist(), outputs["confident_error"].tolist()))
    ]


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """The per-instance CSV."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def diagnose(run: str | Path, out: str | Path | None = None, log: Callable[[str], None] = print,
             **options: Any) -> dict[str, Any]:
    """Diagnose the selected model of a finished run; write diagnosis.json, diagnosis.csv and plots into `out`
    (default: the run). `options` are those of DIAGNOSE_OPTIONS, checked all at once before anything loads."""
    opts = checked(DIAGNOSE_OPTIONS, options, "diagnose")
    check_layers(run, opts["layers"] or [])
    cfg, model, splits = load_trained(run, str(resolve_device(opts.pop("device"))))
    known = model_layers(cfg.model.name, model)
    layers = [known.resolve(layer, "--layer") for layer in opts.pop("layers") or []] or list(known.stages)
    if not layers:
        raise UserError(f"model {cfg.model.name!r} has no stages to read by default; name the layers with --layer "
                        "(module paths, see the run's layers.json)")
    out_dir = Path(out) if out is not None else Path(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary, rows = diagnose_model(model, splits, layers, **opts, log=log, run=str(run))
    summary = {"run": str(run), "data": cfg.data.name, "model": cfg.model.name, "method": cfg.method.name, **summary}
    write_json(summary, out_dir / "diagnosis.json")
    write_rows(rows, out_dir / "diagnosis.csv")
    plot_diagnosis(summary, rows, out_dir)
    log(f"diagnosis written to {out_dir}")
    return summary
