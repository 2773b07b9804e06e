"""The training recipe shared by every method: setup -> epochs (train, validate, select) -> test -> save.

A run directory holds `config.yaml` (resolved config), `versions.json`, `log.jsonl` (one row per epoch),
`checkpoints/last.pt` (everything a resume needs), `checkpoints/best.pt` (the selected model),
`metrics.json` and a `done` marker.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from earlyreadout import __version__, distributed
from earlyreadout.checkpoint import load_checkpoint, save_checkpoint, write_json, write_text
from earlyreadout.config import RunConfig, build_config
from earlyreadout.data import BatchLoader, GroupedDataset, load_splits
from earlyreadout.errors import UserError
from earlyreadout.hooks import unwrap
from earlyreadout.inference import collect_logits
from earlyreadout.methods import METHODS, Context, Method
from earlyreadout.metrics import overlapping_group_accuracy, summarize
from earlyreadout.models import MODELS, build_model
from earlyreadout.progress import bar

METRIC_OF = {
    "worst_group": "worst_group_accuracy",
    "adjusted": "adjusted_accuracy",
    "average": "average_accuracy",
    "worst_class": "worst_class_accuracy",
}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was requested but no CUDA GPU is available; use device=cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The global RNG seed of one epoch, so a resumed epoch draws exactly what the original did."""
    return seed * 100_003 + epoch + 1


def selection_metric(select_by: str, val: GroupedDataset) -> tuple[str, str]:
    """(criterion name, metrics key); `auto` is worst-group with group labels, else average accuracy."""
    if select_by == "auto":
        select_by = "worst_group" if val.has_attributes else "average"
    if select_by in ("worst_group", "adjusted") and not val.has_attributes:
        raise UserError(f"select_by={select_by} needs group labels on val, which {val.name} does not have; "
                        "use select_by=average or worst_class")
    return select_by, METRIC_OF[select_by]


def evaluate_logits(logits: torch.Tensor, dataset: GroupedDataset) -> dict[str, Any]:
    """Split metrics; datasets with overlapping evaluation groups add them under `eval_groups`."""
    result = summarize(logits, dataset.y, dataset.g, dataset.group_names,
                       [dataset.group_of(i) for i in range(dataset.n_groups)], dataset.n_classes)
    if dataset.eval_groups is not None:
        names, membership = dataset.eval_groups
        result["eval_groups"] = overlapping_group_accuracy(logits, dataset.y, membership, names)
    return result


def versions() -> dict[str, str]:
    return {"earlyreadout": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


class RunDir:
    """Paths of a run directory, and the checks that keep an existing run from being overwritten."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.log = self.path / "log.jsonl"
        self.metrics = self.path / "metrics.json"
        self.last = self.path / "checkpoints" / "last.pt"
        self.best = self.path / "checkpoints" / "best.pt"
        self.done = self.path / "done"

    def prepare(self, resume: bool) -> None:
        if resume:
            if not self.last.is_file():
                raise UserError(f"--resume: {str(self.path)!r} has no checkpoint to resume "
                                f"(expected {self.last}); start a new run without --resume")
            return
        if self.config.exists() or self.last.exists() or self.metrics.exists():
            raise UserError(f"{str(self.path)!r} already holds a run; pass --resume to continue it "
                            "or choose another --out")
        try:
            (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise UserError(f"cannot write to output directory {str(self.path)!r}: {e.strerror}") from None


def saved_config(path: str | Path) -> dict[str, Any]:
    """The raw resolved config stored in a run directory."""
    run = RunDir(path)
    if not run.config.is_file():
        raise UserError(f"{str(run.path)!r} is not a run directory (no config.yaml)")
    return yaml.safe_load(run.config.read_text())


def build_run(cfg: RunConfig, device: torch.device, dist: distributed.DistInfo,
              splits: dict[str, GroupedDataset] | None = None) -> tuple[Method, dict[str, GroupedDataset], BatchLoader]:
    """Data, model and method of a config, ready to train (seeded from the config)."""
    seed_everything(cfg.train["seed"])
    splits = splits or load_splits(cfg.data, cfg.data_options)
    train = splits["train"]
    method_cls = METHODS.get(cfg.method)
    if method_cls.needs_groups and not train.has_attributes:
        raise UserError(f"method {cfg.method!r} needs group labels on train, which {train.name} does not have")
    network = build_model(cfg.model, cfg.model_options, train.info, train.n_classes).to(device)
    stages = list(getattr(network, "stages", None) or MODELS.get(cfg.model).stages)
    if dist.world_size > 1:
        if device.type == "cuda":  # one set of batch statistics over the global batch (gloo/CPU has none)
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        network = nn.parallel.DistributedDataParallel(network)
    loader = BatchLoader(train, cfg.train["batch_size"], shuffle=True, seed=cfg.train["seed"],
                         rank=dist.rank, world_size=dist.world_size, num_workers=cfg.train["num_workers"])
    example = train.tensors()[:2] if train.tensors() is not None else torch.stack([train.get_x(0), train.get_x(1)])
    ctx = Context(n_classes=train.n_classes, n_groups=train.n_groups, train=train, train_loader=loader,
                  example_input=example.to(device), device=device, val=splits.get("val"), load_run=load_trained,
                  eval_batch_size=cfg.train["eval_batch_size"], rank=dist.rank, world_size=dist.world_size,
                  extras={"model_stages": stages})
    method = method_cls(network, cfg.method_hp, ctx).to(device)
    return method, splits, loader


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def mean_over_ranks(sums: dict[str, float], n: int) -> dict[str, float]:
    """Per-step averages of logged numbers over every rank's steps (one process: over its own)."""
    keys = sorted(sums)
    total = distributed.all_reduce_sum(torch.tensor([sums[k] for k in keys] + [float(n)], dtype=torch.float64))
    return {k: float(v) / max(float(total[-1]), 1.0) for k, v in zip(keys, total[:-1])}


def train(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print,
          splits: dict[str, GroupedDataset] | None = None,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train `cfg`, select on validation, evaluate the selected checkpoint on test; return metrics.json.

    `on_epoch_end(epoch, val_metrics)` is called after each epoch is logged and checkpointed; it may
    raise to stop the run (hyperparameter search prunes trials this way).
    """
    device = resolve_device(cfg.train["device"])
    dist = distributed.setup(device)
    device = distributed.local_device(device, dist)
    if not dist.is_main:
        log = _silent
    run = RunDir(cfg.out)
    if dist.is_main:
        run.prepare(resume)
    # build everything before writing into the run directory, so a run that cannot start leaves no files
    # behind that would block its corrected retry
    method, splits, loader = build_run(cfg, device, dist, splits)
    val, test = splits["val"], splits["test"]
    select_by, key = selection_metric(cfg.train["select_by"], val)
    if dist.is_main:
        write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), run.config)
        write_json(versions(), run.path / "versions.json")
    distributed.barrier()
    progress = cfg.train["progress"] if dist.is_main else False

    def score(split: GroupedDataset) -> dict[str, Any]:
        logits = collect_logits(method.predict, method, split, cfg.train["eval_batch_size"], device,
                                dist.rank, dist.world_size, desc=f"eval {split.split}", progress=progress)
        return evaluate_logits(logits, split)

    start, step, best_score, best_epoch, elapsed = 0, 0, -float("inf"), -1, 0.0
    if resume:
        advice = ("the run cannot be resumed from it" + ("; checkpoints/best.pt (the model selected so far) is "
                  "usable by itself" if run.best.is_file() else "") + "; start a new run with another --out")
        state = distributed.broadcast_object(load_checkpoint(run.last, advice=advice) if dist.is_main else None)
        method.load_checkpoint(state["method_state"])
        start, step = state["epoch"], state["step"]
        best_score, best_epoch, elapsed = state["best_score"], state["best_epoch"], state["elapsed"]
        if dist.is_main and run.log.exists():
            rows = [r for r in run.log.read_text().splitlines() if r and json.loads(r)["epoch"] < start]
            write_text("".join(r + "\n" for r in rows), run.log)
        log(f"resuming {run.path} at epoch {start}")

    for epoch in range(start, cfg.train["epochs"]):
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(cfg.train["seed"], epoch))
        method.train()
        method.on_epoch_start(epoch)
        loader.set_epoch(epoch)
        sums: dict[str, float] = {}
        n = 0
        for batch in bar(loader, desc=f"epoch {epoch + 1}/{cfg.train['epochs']}", enabled=progress):
            stats = method.update(to_device(batch, device), step)
            step += 1
            n += 1
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
        distributed.broadcast_module(method, buffers_only=True)
        distributed.check_in_sync(method)
        elapsed += time.perf_counter() - t0
        measures = method.epoch_measures(epoch)
        metrics = score(val)
        improved = metrics[key] > best_score
        if improved:
            best_score, best_epoch = metrics[key], epoch
        row = {"epoch": epoch, "step": step, "train": mean_over_ranks(sums, n),
               "val": {k: v for k, v in metrics.items() if k != "groups"},
               "val_groups": {g["name"]: g["accuracy"] for g in metrics["groups"]}, "time_s": elapsed}
        if measures:
            row["measures"] = measures
        if dist.is_main:
            if improved:
                save_checkpoint(unwrap(method.network).state_dict(), run.best)
            with run.log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            save_checkpoint({"epoch": epoch + 1, "step": step, "best_score": best_score, "best_epoch": best_epoch,
                             "elapsed": elapsed, "method_state": method.checkpoint()}, run.last)
        log(f"epoch {epoch + 1:>3}/{cfg.train['epochs']}  loss {row['train'].get('loss', float('nan')):.4f}  "
            f"val avg {metrics['average_accuracy']:.3f}  val worst-group {metrics['worst_group_accuracy']:.3f}"
            + ("  *" if improved else ""))
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    distributed.barrier()

    best = distributed.broadcast_object(
        load_checkpoint(run.best, advice="train the run again with another --out") if dist.is_main else None)
    unwrap(method.network).load_state_dict(best)
    result = {
        "method": cfg.method, "dataset": cfg.data, "model": cfg.model, "seed": cfg.train["seed"],
        "selected_by": f"val {select_by}", "best_epoch": best_epoch, "epochs": cfg.train["epochs"],
        "train_time_s": elapsed, "val": score(val), "test": score(test),
    }
    if dist.is_main:
        write_json(result, run.metrics)
        write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"), run.done)
    distributed.teardown()
    return result


def _silent(_message: str) -> None:
    pass


def load_trained(path: str | Path, device: str = "cpu") -> tuple[RunConfig, nn.Module, dict[str, GroupedDataset]]:
    """The selected model of a finished run, its config and its data splits (rebuilt from the config)."""
    run = RunDir(path)
    cfg = build_config(saved_config(path))
    if not run.best.is_file():
        raise UserError(f"{str(run.path)!r} has no trained model (expected {run.best}); train it first")
    splits = load_splits(cfg.data, cfg.data_options)
    train = splits["train"]
    model = build_model(cfg.model, cfg.model_options, train.info, train.n_classes)
    model.load_state_dict(load_checkpoint(run.best, map_location=device,
                                          advice=f"train {str(run.path)!r} again with another --out"))
    return cfg, model.to(device).eval(), splits

