"""The training recipe shared by every method: setup -> epochs (train, validate, select) -> test -> save.

The run directory it writes is described in `earlyreadout.train.runs`.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from earlyreadout import distributed
from earlyreadout.config import RunConfig, TrainSettings
from earlyreadout.data import DATASETS, BatchLoader, GroupedDataset, load_splits
from earlyreadout.errors import ConfigError
from earlyreadout.io import load_checkpoint, save_checkpoint, write_json, write_text
from earlyreadout.methods import METHODS, Context, Method, refuse_lacking_labels
from earlyreadout.metrics import evaluate_logits, selection_metric
from earlyreadout.models import build_model, model_layers
from earlyreadout.models.inference import collect_logits
from earlyreadout.models.layers import unwrap
from earlyreadout.models.stages import ModelLayers
from earlyreadout.params import named_layers
from earlyreadout.progress import bar
from earlyreadout.train.runs import RunDir, load_trained, run_result, versions


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The global RNG seed of one epoch, so a resumed epoch draws exactly what the original did."""
    return seed * 100_003 + epoch + 1


def eval_batch_size(given: int | None, info: dict[str, Any]) -> int:
    """`given`, or a batch whose input is about 64 MB (16 to 512 examples): 512 small images or token
    sequences, 64 images at 224 px, so evaluating a large model does not hold gigabytes of activations."""
    if given is not None:
        return given
    example_bytes = 4 * math.prod(info.get("shape", (1,)))
    return max(16, min(512, 2 ** int(math.log2(max(64e6 // example_bytes, 1)))))


def check_layers_before_data(cfg: RunConfig) -> None:
    """The method's layer settings checked on a model built from the input the dataset declares (`model_input`,
    where it is known without reading files), so a typo costs no data loading; other datasets' layers are
    checked when the method is built (`ModelLayers.resolve`)."""
    specs = METHODS.get(cfg.method.name).hparams
    if not named_layers(specs, cfg.method.settings) or "path" in cfg.model.settings:  # (a model from a folder: once built)
        return
    dataset = DATASETS.get(cfg.data.name)(**cfg.data.settings)
    if not hasattr(dataset, "model_input"):
        return
    info, n_classes = dataset.model_input()
    no_weights = {"weights": None} if "weights" in cfg.model.settings else {}  # the module names need no weights
    model = build_model(cfg.model.name, {**cfg.model.settings, **no_weights}, info, n_classes)
    problems = model_layers(cfg.model.name, model).problems(specs, cfg.method.settings, f"method {cfg.method.name!r}")
    if problems:
        raise ConfigError(problems)


def build_run(cfg: RunConfig, device: torch.device, dist: distributed.DistInfo,
              splits: dict[str, GroupedDataset] | None = None) -> tuple[Method, dict[str, GroupedDataset], BatchLoader]:
    """Data, model and method of a config, ready to train (seeded from the config)."""
    if splits is None:
        check_layers_before_data(cfg)  # before seeding: the throwaway model's draws leave the run's untouched
    seed_everything(cfg.train.seed)
    splits = splits or load_splits(cfg.data.name, cfg.data.settings)
    train = splits["train"]
    refuse_missing_labels(cfg.method.name, cfg.method.settings, splits)
    network = build_model(cfg.model.name, cfg.model.settings, train.info, train.n_classes).to(device)
    if cfg.train.channels_last:
        network = network.to(memory_format=torch.channels_last)
    if cfg.train.compile:
        network = torch.compile(network)
    layers = model_layers(cfg.model.name, network)
    if dist.world_size > 1:
        if device.type == "cuda":  # one set of batch statistics over the global batch (gloo/CPU has none)
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        network = nn.parallel.DistributedDataParallel(network)
    method, loader = attach_method(cfg.method.name, cfg.method.settings, network, splits, cfg.train, device, dist,
                                   RunDir(cfg.out).embeddings, layers)
    return method, splits, loader


def refuse_missing_labels(method: str, hp: dict[str, Any], splits: dict[str, GroupedDataset]) -> None:
    """One line naming the group labels `method` needs under `hp` that `splits` lack, and what to do instead."""
    method_cls = METHODS.get(method)
    if method_cls.lacking_labels(hp, splits) is None:
        return
    fixes = [f"method.{k}={c}" for k, p in method_cls.hparams.items() for c in p.choices or ()
             if method_cls.lacking_labels({**hp, k: c}, splits) is None]
    readable = "none or val" if "val" in splits and splits["val"].has_attributes else "none"
    refuse_lacking_labels([(method, method_cls, hp)], splits, (f"set {fixes[0]}, or " if fixes else "")
                          + f"choose a method `earlyreadout list` shows reading {readable}")


def attach_method(method: str, hp: dict[str, Any], network: nn.Module, splits: dict[str, GroupedDataset],
                  settings: TrainSettings, device: torch.device, dist: distributed.DistInfo,
                  cache_dir: Path | None, layers: ModelLayers) -> tuple[Method, BatchLoader]:
    """Method `method` (settings `hp`) around a built `network` on `splits`, with the train loader its updates
    read; `settings` is the run's `train` section (batch size, seed, precision, ...), `layers` the
    network's resolved layers."""
    train = splits["train"]
    loader = BatchLoader(train, settings.batch_size, shuffle=True, seed=settings.seed,
                         rank=dist.rank, world_size=dist.world_size, num_workers=settings.num_workers,
                         pin_memory=device.type == "cuda")
    example = train.tensors()[:2] if train.tensors() is not None else torch.stack([train.get_x(0), train.get_x(1)])
    ctx = Context(n_classes=train.n_classes, n_groups=train.n_groups, train=train, train_loader=loader,
                  example_input=example.to(device), device=device, val=splits.get("val"), load_run=load_trained,
                  eval_batch_size=eval_batch_size(settings.eval_batch_size, train.info), rank=dist.rank,
                  world_size=dist.world_size, precision=settings.precision, seed=settings.seed,
                  cache_dir=cache_dir, layers=layers)
    return METHODS.get(method)(network, hp, ctx).to(device), loader


def in_format(x: torch.Tensor, memory_format: torch.memory_format | None) -> torch.Tensor:
    """A 4-D image batch in `memory_format` (channels-last for CNNs); any other input as it is."""
    return x if memory_format is None or x.dim() != 4 else x.contiguous(memory_format=memory_format)


def to_device(batch: dict[str, torch.Tensor], device: torch.device,
              memory_format: torch.memory_format | None = None) -> dict[str, torch.Tensor]:
    """The batch on `device` (non-blocking copies from pinned memory), 4-D images in `memory_format`."""
    if device.type != "cpu":
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return {**batch, "x": in_format(batch["x"], memory_format)}


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
    device = distributed.resolve_device(cfg.train.device)
    dist = distributed.setup(device)
    result = run_epochs(cfg, distributed.local_device(device, dist), dist, resume, log, splits, on_epoch_end)
    distributed.teardown()  # once the run's DDP network is freed, so the process group ends with it
    return result


@dataclass
class RunState:
    """Where a run stands after its completed epochs: what its last checkpoint holds for a resume."""

    epoch: int = 0
    step: int = 0
    best_score: float = -float("inf")
    best_epoch: int = -1
    elapsed: float = 0.0

    def record(self, epoch: int, score: float) -> bool:
        """Note epoch `epoch`'s selection score; whether it is the best so far (its checkpoint is then kept)."""
        self.epoch = epoch + 1
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            return True
        return False

    def checkpoint(self, method: Method) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "elapsed": self.elapsed, "method_state": method.checkpoint()}


def fit_epoch(method: Method, loader: BatchLoader, epoch: int, step: int, seed: int, device: torch.device,
              precision: str = "fp32", memory_format: torch.memory_format | None = None, progress: bool | None = False,
              max_steps: int | None = None, desc: str = "") -> tuple[dict[str, float], int, int]:
    """One epoch of `method.update` over `loader` from global step `step` (at most `max_steps` updates), seeded
    so a resumed epoch draws what the original did: (summed logged numbers, updates made, the next step)."""
    torch.manual_seed(epoch_seed(seed, epoch))
    method.train()
    method.on_epoch_start(epoch)
    loader.set_epoch(epoch)
    sums: dict[str, float] = {}
    n = 0
    batches = loader if max_steps is None else itertools.islice(loader, max_steps)
    for batch in bar(batches, desc=desc or f"epoch {epoch + 1}", enabled=progress):
        with distributed.autocast(device, precision):
            stats = method.update(to_device(batch, device, memory_format), step)
        step += 1
        n += 1
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
    return sums, n, step


def run_epochs(cfg: RunConfig, device: torch.device, dist: distributed.DistInfo, resume: bool,
               log: Callable[[str], None], splits: dict[str, GroupedDataset] | None,
               on_epoch_end: Callable[[int, dict[str, Any]], None] | None) -> dict[str, Any]:
    """The body of `train` on this process's device: everything it builds is freed when it returns."""
    log = log if dist.is_main else silent
    run = RunDir(cfg.out)
    saved, log_rows = None, []  # a resume's checkpoint and log, read (and checked) before anything is written
    if dist.is_main:
        run.prepare(resume, cfg)
        if resume:
            saved, log_rows = run.resume_point(cfg)
    # build everything before writing into the run directory, so a run that cannot start leaves no files
    # behind that would block its corrected retry
    method, splits, loader = build_run(cfg, device, dist, splits)
    for note in cfg.notes:
        log(f"{cfg.data.name}: {note}")
    select_by, key = selection_metric(cfg.train.select_by, splits["val"])
    if dist.is_main:
        describe_run(run, cfg, method.ctx.layers)
    distributed.barrier()
    progress = cfg.train.progress if dist.is_main else False
    memory_format = torch.channels_last if cfg.train.channels_last else None
    score = scorer(method, cfg, device, dist, progress)
    state = resumed(run, method, saved, log_rows, dist, log) if resume else RunState()
    for epoch in range(state.epoch, cfg.train.epochs):
        t0 = time.perf_counter()
        sums, n, state.step = fit_epoch(method, loader, epoch, state.step, cfg.train.seed, device,
                                        cfg.train.precision, memory_format, progress,
                                        desc=f"epoch {epoch + 1}/{cfg.train.epochs}")
        distributed.broadcast_module(method, buffers_only=True)
        distributed.check_in_sync(method)
        state.elapsed += time.perf_counter() - t0
        measures = method.epoch_measures(epoch)
        metrics = score(splits["val"])
        improved = state.record(epoch, metrics[key])
        row = {"epoch": epoch, "step": state.step, "train": mean_over_ranks(sums, n),
               "val": metrics, "time_s": state.elapsed, **({"measures": measures} if measures else {})}
        if dist.is_main:
            save_epoch(run, method, state, row, improved)
        log(f"epoch {epoch + 1:>3}/{cfg.train.epochs}  loss {row['train'].get('loss', float('nan')):.4f}  "
            f"val avg {metrics['average_accuracy']:.3f}  val worst-group {metrics['worst_group_accuracy']:.3f}"
            + ("  *" if improved else ""))
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    distributed.barrier()
    return finish_training(run, cfg, method, state, f"val {select_by}", score, splits, dist)


def resumed(run: RunDir, method: Method, saved: dict[str, Any] | None, log_rows: list[dict[str, Any]],
            dist: distributed.DistInfo, log: Callable[[str], None]) -> RunState:
    """The state of a resumed run, its method restored and its log cut back to the checkpoint's epochs."""
    saved = distributed.broadcast_object(saved)
    method.load_checkpoint(saved["method_state"])
    state = RunState(saved["epoch"], saved["step"], saved["best_score"], saved["best_epoch"], saved["elapsed"])
    if dist.is_main and run.log.exists():
        write_text("".join(json.dumps(r) + "\n" for r in log_rows if r.get("epoch", 0) < state.epoch), run.log)
    log(f"resuming {run.path} at epoch {state.epoch}")
    return state


def save_epoch(run: RunDir, method: Method, state: RunState, row: dict[str, Any], improved: bool) -> None:
    """An epoch's files: the selected model when it improved, its log row, then the resume checkpoint."""
    if improved:
        save_checkpoint(unwrap(method.network).state_dict(), run.best)
    with run.log.open("a") as f:
        f.write(json.dumps(row) + "\n")
    save_checkpoint(state.checkpoint(method), run.last)


def finish_training(run: RunDir, cfg: RunConfig, method: Method, state: RunState, selected_by: str,
                    score: Callable[[GroupedDataset], dict[str, Any]], splits: dict[str, GroupedDataset],
                    dist: distributed.DistInfo) -> dict[str, Any]:
    """Load the selected checkpoint, refit after selection, evaluate on val and test, write metrics.json."""
    best = distributed.broadcast_object(
        load_checkpoint(run.best, advice="train the run again with another --out") if dist.is_main else None)
    unwrap(method.network).load_state_dict(best)
    retrained = refit_after_selection(method)
    if retrained and dist.is_main:
        save_checkpoint(unwrap(method.network).state_dict(), run.retrained)
    result = run_result(cfg, METHODS.get(cfg.method.name).labels_used(cfg.method.settings), selected_by, state.best_epoch,
                        state.elapsed, score(splits["val"]), score(splits["test"]),
                        **({"last_layer": retrained} if retrained else {}))
    if dist.is_main:
        finish_run(run, result)
    return result


def describe_run(run: RunDir, cfg: RunConfig, layers: ModelLayers) -> None:
    """What a run directory says about itself: the resolved config, library versions, the model's layers."""
    write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), run.config)
    write_json(versions(), run.versions)
    write_json(layers.to_dict(), run.layers)


def finish_run(run: RunDir, result: dict[str, Any]) -> None:
    """metrics.json, then the done marker."""
    write_json(result, run.metrics)
    write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"), run.done)


def scorer(method: Method, cfg: RunConfig, device: torch.device, dist: distributed.DistInfo,
           progress: bool | None) -> Callable[[GroupedDataset], dict[str, Any]]:
    """Split metrics of `method`'s predictions under the run's precision and memory format, over all ranks."""
    memory_format = torch.channels_last if cfg.train.channels_last else None

    def predict(x: torch.Tensor) -> torch.Tensor:
        with distributed.autocast(device, cfg.train.precision):
            return method.predict(in_format(x, memory_format))

    def score(split: GroupedDataset) -> dict[str, Any]:
        logits = collect_logits(predict, method, split, method.ctx.eval_batch_size, device,
                                dist.rank, dist.world_size, desc=f"eval {split.split}", progress=progress)
        return evaluate_logits(logits, split)

    return score


def refit_after_selection(method: Method) -> dict[str, Any]:
    """`method.after_selection()` with its time (`time_s`); {} for a method that changes nothing there."""
    t0 = time.perf_counter()
    info = method.after_selection()
    return {**info, "time_s": time.perf_counter() - t0} if info else {}


def silent(_message: str) -> None:
    """A log function that drops every message (ranks other than the main one, search trials)."""
