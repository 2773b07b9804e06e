"""Run directories: their paths and overwrite checks, the saved config, library versions, and loading a
finished run's selected model (what teachers, analysis commands and reports read).

A run directory holds `config.yaml` (resolved config), `versions.json`, `log.jsonl` (one row per epoch),
`checkpoints/last.pt` (everything a resume needs), `checkpoints/best.pt` (the selected model),
`metrics.json` and a `done` marker.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from earlyreadout import __version__
from earlyreadout.config import RunConfig, build_config
from earlyreadout.data import GroupedDataset, load_splits
from earlyreadout.errors import UserError
from earlyreadout.models import build_model
from earlyreadout.train.checkpoint import load_checkpoint


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

