"""A run directory from a model trained elsewhere: the user's model and checkpoint, evaluated on every split and
written as a finished run (config, layers, metrics, the selected checkpoint, its source recorded), so that
`diagnose`, `retrain`, `gradcam`, `report` and `compare`'s `A+B` refits read it like a run they trained.

Everything is checked before the run directory is created: a checkpoint that does not fit, a factory that
raises or a model that cannot take the data's inputs is one line and leaves nothing behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earlyreadout.config import RunConfig, build_config, layered
from earlyreadout.data import GroupedDataset, load_splits
from earlyreadout.distributed import resolve_device
from earlyreadout.errors import UserError
from earlyreadout.io import save_checkpoint
from earlyreadout.metrics import evaluate_logits
from earlyreadout.models import build_model, model_layers
from earlyreadout.models.factory import factory_source, file_sha256
from earlyreadout.models.inference import collect_logits
from earlyreadout.models.weights import load_trained_weights, read_trained
from earlyreadout.train.engine import describe_run, eval_batch_size, finish_run
from earlyreadout.train.runs import UNKNOWN_LABELS, RunDir, run_result

IMPORTED = "imported"  # the method an imported run's metrics name
SECTIONS = ("data", "model", "train")  # what an import's settings may set (the method is not run)
TRANSFORM_ADVICE = ("give the input transform the model was trained with: data.image_size (--image-size), "
                    "data.channels (--channels), data.mean / data.std (--mean, --std)")


def import_config(model: str, data: str, out: str | Path, values: dict[str, Any] | None = None,
                  overrides: list[str] | None = None) -> RunConfig:
    """The validated config of an imported run: ERM's settings stand for the method (nothing is trained), the
    model and data as given (typed `values` by dotted key, then `key=value` overrides)."""
    given = layered({}, values, overrides)
    refused = sorted(set(given) - set(SECTIONS))
    if refused:
        raise UserError(f"import takes data.*, model.* and train.* settings; got {', '.join(refused)} (the model is "
                        "not trained here, so method settings do not apply)")
    raw = layered(given, {"method.name": "erm", "data.name": data, "model.name": model, "out": str(out)})
    return build_config(raw)


def check_forward(model: nn.Module, train: GroupedDataset, device: torch.device) -> None:
    """Refuse a model that cannot take the data's inputs, or whose output is not one logit per class."""
    x = torch.stack([train.get_x(0), train.get_x(min(1, len(train) - 1))]).to(device)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as e:  # noqa: BLE001  (the user's forward may raise anything; it becomes one line)
        reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"the model cannot take the data's inputs {tuple(x.shape)} ({type(e).__name__}: {reason}); "
                        f"{TRANSFORM_ADVICE}") from None
    if not isinstance(out, torch.Tensor):
        raise UserError(f"the model returns a {type(out).__name__}; earlyreadout reads a tensor of logits (batch, "
                        "classes): wrap it so forward returns the logits")
    if out.shape != (len(x), train.n_classes):
        raise UserError(f"the model outputs shape {tuple(out.shape)} for {len(x)} examples, but the data has "
                        f"{train.n_classes} classes; build it for {train.n_classes} (model.kwargs) or fix "
                        "data.label_column")


def evaluate(model: nn.Module, splits: dict[str, GroupedDataset], device: torch.device,
             batch_size: int) -> dict[str, dict[str, Any]]:
    """Split metrics of the model on every split."""
    return {name: evaluate_logits(collect_logits(model, model, split, batch_size, device, desc=f"eval {name}"), split)
            for name, split in splits.items()}


def copy_source(cfg: RunConfig, run: RunDir) -> dict[str, Any]:
    """Copy the model factory's source file into the run and return what metrics.json records of it."""
    if cfg.model.name != "factory":
        return {}
    source = factory_source(cfg.model.settings["factory"])
    if source is None or not source.is_file():
        return {"factory": cfg.model.settings["factory"]}
    run.source.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, run.source / source.name)
    return {"factory": cfg.model.settings["factory"], "source_file": str(source), "source_sha256": file_sha256(source)}


def import_model(model: str, checkpoint: str | Path, out: str | Path, data: str = "csv",
                 values: dict[str, Any] | None = None, overrides: list[str] | None = None,
                 pickled_module: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write run directory `out` for `model` (a registered name, a torchvision model name or FILE.py:CALLABLE)
    with the weights of `checkpoint`, evaluated on `data`'s splits; return its metrics.json."""
    cfg = import_config(model, data, out, values, overrides)
    source = factory_source(cfg.model.settings["factory"]) if cfg.model.name == "factory" else None
    if source is not None and source.is_file():  # recorded, so a later change of the file is noticed
        cfg.model.settings["source_sha256"] = file_sha256(source)
    run = RunDir(cfg.out)
    if run.config.exists() or run.metrics.exists():
        raise UserError(f"{str(run.path)!r} already holds a run; choose another --out")
    state = read_trained(checkpoint, pickled_module)
    splits = load_splits(cfg.data.name, cfg.data.settings)
    train = splits["train"]
    device = resolve_device(cfg.train.device)
    network = build_model(cfg.model.name, cfg.model.settings, train.info, train.n_classes)
    load_trained_weights(network, state, str(checkpoint))
    network = network.to(device)
    check_forward(network, train, device)
    metrics = evaluate(network, splits, device, eval_batch_size(cfg.train.eval_batch_size, train.info))
    run.prepare(False, cfg)
    describe_run(run, cfg, model_layers(cfg.model.name, network))
    save_checkpoint(network.state_dict(), run.best)
    imported = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": file_sha256(checkpoint),
                **copy_source(cfg, run)}
    result = run_result(cfg, UNKNOWN_LABELS, "imported (trained elsewhere)", None, 0.0, metrics["val"],
                        metrics["test"], method=IMPORTED, epochs=0, train=metrics["train"], imported=imported)
    finish_run(run, result)
    log(f"imported {model} from {checkpoint}: val worst-group {metrics['val']['worst_group_accuracy']:.3f}, "
        f"test worst-group {metrics['test']['worst_group_accuracy']:.3f}")
    return result
