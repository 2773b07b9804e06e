"""Run directories: their paths and overwrite checks, the saved config, library versions, and loading a
finished run's selected model (what teachers, analysis commands and reports read).

A run directory holds `config.yaml` (resolved config), `versions.json`, `layers.json` (module names),
`log.jsonl` (one row per epoch),
`checkpoints/last.pt` (everything a resume needs), `checkpoints/best.pt` (the selected model),
`metrics.json` and a `done` marker. Last-layer retraining adds `checkpoints/retrained.pt` (the selected
model with its retrained classifier: the run's final model) and caches embeddings in `embeddings/`. A run
imported from a model trained elsewhere (`earlyreadout import`) has no log or `last.pt`, and keeps a copy of
the model's source file in `source/`.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from earlyreadout import __version__
from earlyreadout.config import RunConfig, build_config, result_settings
from earlyreadout.data import GroupedDataset, load_splits
from earlyreadout.errors import ConfigError, UserError, file_error
from earlyreadout.io import load_checkpoint, read_json_file, read_jsonl_file, read_yaml_file
from earlyreadout.models import build_model
from earlyreadout.models.stages import ModelLayers

UNKNOWN_LABELS = "unknown"  # the group labels a model trained outside earlyreadout read: not known here
STORED_CONFIG_ADVICE = ("it was edited or written by another version; restore it, or train again with "
                        "another --out")


def versions() -> dict[str, str]:
    """The versions of earlyreadout, torch, numpy and Python that a run or a result records."""
    return {"earlyreadout": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def check_layers(path: str | Path, layers: list[str]) -> None:
    """Refuse layer settings (module paths, `stage:N`) the run's model does not have, from its `layers.json`,
    before any data loads (runs written before that file existed are checked once their model is built)."""
    run = RunDir(path)
    if not run.layers.is_file():
        return
    record = read_json_file(run.layers, "layer list", "remove it to check layers on the loaded model")
    stored = ModelLayers.from_dict(record)
    for layer in layers:
        problem = stored.problem(layer) if "stages" in record or not layer.startswith("stage:") else None
        if problem:
            raise UserError(f"run {str(run.path)!r}: {problem}")


def check_writable(folder: Path) -> None:
    """Raise a UserError unless files can be created in `folder`; the folders made to find out are removed again
    (only those that did not exist before)."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output directory {str(folder)!r}: {e.strerror}") from None
    finally:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()


class RunDir:
    """Paths of a run directory (every file name of the layout is spelled here only), the checks that keep an
    existing run from being overwritten, and training a config unless its run is already done."""

    CONFIG = "config.yaml"  # the file that makes a folder a run directory

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / self.CONFIG
        self.log = self.path / "log.jsonl"
        self.metrics = self.path / "metrics.json"
        self.last = self.path / "checkpoints" / "last.pt"
        self.best = self.path / "checkpoints" / "best.pt"
        self.retrained = self.path / "checkpoints" / "retrained.pt"
        self.embeddings = self.path / "embeddings"
        self.done = self.path / "done"
        self.layers = self.path / "layers.json"
        self.feature_quality = self.path / "feature_quality.json"  # DFR (val groups) on the selected model's features
        self.versions = self.path / "versions.json"
        self.source = self.path / "source"  # an imported run's model source file, copied

    @property
    def model(self) -> Path:
        """The run's final model: the retrained one after last-layer retraining, else the selected one."""
        return self.retrained if self.retrained.is_file() else self.best

    def prepare(self, resume: bool, cfg: RunConfig) -> None:
        """Refuse to overwrite an existing run, or to resume one with settings that change its results, or an
        output directory that cannot be written. It creates nothing: the directory appears with the run's
        first file, so a run that fails to start leaves nothing behind."""
        if resume:
            if not self.last.is_file():
                raise UserError(f"--resume: {str(self.path)!r} has no checkpoint to resume "
                                f"(expected {self.last}); start a new run without --resume")
            refuse_changed_settings(self, cfg)
            return
        if self.config.exists() or self.last.exists() or self.metrics.exists():
            raise UserError(f"{str(self.path)!r} already holds a run; pass --resume to continue it "
                            "or choose another --out")
        check_writable(self.path)

    def require_finished(self, role: str) -> None:
        """Refuse a run that has not finished (e.g. a teacher still training), naming what is missing."""
        if not self.config.is_file():
            raise UserError(f"{role} {str(self.path)!r} is not a finished run (no config.yaml: not a run directory); "
                            "train it first with `earlyreadout train --out DIR`")
        if not self.done.is_file() or not self.best.is_file():
            raise UserError(f"{role} {str(self.path)!r} is not a finished run (no done marker or checkpoints/best.pt);"
                            f" finish it with `earlyreadout train --resume --out {self.path}`")

    def resume_point(self, cfg: RunConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(last checkpoint, log rows) of a run to resume with `cfg`, which must not end before the checkpoint."""
        advice = ("the run cannot be resumed from it" + ("; checkpoints/best.pt (the model selected so far) is "
                  "usable by itself" if self.best.is_file() else "") + "; start a new run with another --out")
        state = load_checkpoint(self.last, advice=advice)
        if not isinstance(state, dict) or not {"epoch", "step", "method_state"} <= set(state):
            raise file_error("checkpoint", self.last, "is not a resume checkpoint (a model's weights?)", advice)
        if state["epoch"] > cfg.train.epochs:
            raise UserError(f"cannot resume {str(self.path)!r} with train.epochs={cfg.train.epochs}: it has "
                            f"already trained {state['epoch']} epochs; give at least that many, or start a new run "
                            "with another --out")
        return state, self.read_log()

    def train_or_reuse(self, cfg: RunConfig, train: Callable[..., dict[str, Any]], **options: Any) -> dict[str, Any]:
        """The metrics of `cfg`'s run in this directory: read when it is done, else from `train(cfg, resume=...,
        **options)` (the engine's `train`, passed in because the engine imports this module), which continues
        an interrupted run from its last checkpoint."""
        if self.done.exists():
            return self.read_metrics()
        return train(cfg, resume=self.last.exists(), **options)

    def read_metrics(self) -> dict[str, Any]:
        """The finished run's metrics.json."""
        return read_json_file(self.metrics, "metrics file", "recompute it with `earlyreadout train --resume "
                              f"--out {self.path}`")

    def read_feature_quality(self) -> dict[str, Any] | None:
        """The run's saved feature quality (train/feature_quality.py), or None where none was computed."""
        if not self.feature_quality.is_file():
            return None
        return read_json_file(self.feature_quality, "feature quality file", "delete it to recompute it")

    def read_log(self) -> list[dict[str, Any]]:
        """The per-epoch rows of log.jsonl ([] before the first epoch)."""
        if not self.log.exists():
            return []
        return read_jsonl_file(self.log, "training log", "delete that line (a crash can leave a half-written "
                               "last line) and run the command again")


def run_result(cfg: RunConfig, labels_used: str, selected_by: str | None, best_epoch: int | None,
               train_time_s: float | None, val: dict[str, Any], test: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A run's metrics.json (its schema is written here only): what produced it, how its model was selected,
    its split metrics, then what the run adds (`extra` wins, e.g. an imported run's `method`)."""
    return {"method": cfg.method.name, "dataset": cfg.data.name, "model": cfg.model.name, "seed": cfg.train.seed,
            "labels_used": labels_used, "selected_by": selected_by, "best_epoch": best_epoch,
            "epochs": cfg.train.epochs, "train_time_s": train_time_s, "val": val, "test": test, **extra}


def saved_config(path: str | Path) -> dict[str, Any]:
    """The raw resolved config stored in a run directory."""
    run = RunDir(path)
    if not run.config.exists():
        raise UserError(f"{str(run.path)!r} is not a run directory (no config.yaml)")
    return read_yaml_file(run.config, "run config", STORED_CONFIG_ADVICE)


def stored_config(path: str | Path) -> RunConfig:
    """The validated config of a run directory; an invalid one is an error naming its file."""
    run = RunDir(path)
    try:
        return build_config(saved_config(path))
    except ConfigError as e:
        raise file_error("run config", run.config, f"is not a valid config ({e})", STORED_CONFIG_ADVICE) from None


def refuse_changed_settings(run: RunDir, cfg: RunConfig) -> None:
    """Raise when `cfg` differs from the run's stored config in a setting that can change results."""
    stored, given = result_settings(stored_config(run.path).to_dict()), result_settings(cfg.to_dict())
    for settings in (stored, given):  # a run may be extended: it then computes what a longer run would
        settings.pop("train.epochs")

    def shown(settings: dict[str, Any], key: str) -> str:
        return repr(settings[key]) if key in settings else "unset"

    changed = [f"{k}: stored {shown(stored, k)}, given {shown(given, k)}" for k in dict.fromkeys([*stored, *given])
               if k not in stored or k not in given or stored[k] != given[k]]
    if changed:
        raise UserError(f"cannot resume {str(run.path)!r} with different settings ({'; '.join(changed)}); "
                        "resume without changing them, or start a new run with another --out")


def load_trained(path: str | Path, device: str = "cpu") -> tuple[RunConfig, nn.Module, dict[str, GroupedDataset]]:
    """The selected model of a finished run, its config and its data splits (rebuilt from the config)."""
    run = RunDir(path)
    cfg = stored_config(path)
    if not run.best.is_file():
        raise UserError(f"{str(run.path)!r} has no trained model (expected {run.best}); train it first")
    splits = load_splits(cfg.data.name, cfg.data.settings)
    train = splits["train"]
    model = build_model(cfg.model.name, cfg.model.settings, train.info, train.n_classes)
    model.load_state_dict(load_checkpoint(run.model, map_location=device,
                                          advice=f"train {str(run.path)!r} again with another --out"))
    return cfg, model.to(device).eval(), splits

