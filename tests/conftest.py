"""Shared fixtures: tiny generated splits and configs so every test runs in seconds on a CPU."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.metrics import evaluate_logits
from earlyreadout.models.inference import collect_logits
from earlyreadout.params import resolve
from earlyreadout.train.runs import load_trained

os.environ.setdefault("CI", "true")  # no progress bars in tests
torch.set_num_threads(1)

TINY = {"n_train": 96, "n_val": 48, "n_test": 48}


def tiny_splits(name: str, **options):
    opts, problems = resolve(DATASETS.get(name).options, {**TINY, **options}, name)
    assert not problems, problems
    return load_splits(name, opts)


@pytest.fixture(scope="session")
def digits_splits():
    return tiny_splits("colored-digits", size=16)


@pytest.fixture(scope="session")
def dominoes_splits():
    return tiny_splits("dominoes", size=8)


@pytest.fixture(scope="session")
def text_splits():
    return tiny_splits("spurious-text")


def tiny_config(tmp_path: Path, method: str = "erm", data: str = "colored-digits", hp: dict | None = None,
                **sections):
    """A validated config for a 2-epoch run on tiny data under `tmp_path`.

    `hp` sets method hparams; keyword dicts `data_options`, `model` and `train` extend those sections.
    """
    raw = {
        "method": {"name": method, **(hp or {})},
        "data": {"name": data, **TINY, **({"size": 16} if data == "colored-digits" else {}),
                 **sections.get("data_options", {})},
        "model": sections.get("model", {"name": "small-cnn", "width": 8} if data != "spurious-text"
                              else {"name": "text-transformer", "dim": 16, "layers": 2, "heads": 2}),
        "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 64, **sections.get("train", {})},
        "out": str(tmp_path / "run"),
    }
    return build_config(raw)


def folder_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha1} of every file below `folder`: equal before and after means nothing changed."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def reloaded_test_metrics(run: str | Path) -> dict:
    """Test metrics of a finished run's final model, reloaded from its checkpoint and evaluated on the CPU in
    fp32: what the run reported, if it saved the model it evaluated."""
    _, model, splits = load_trained(run)
    return evaluate_logits(collect_logits(model, model, splits["test"], 64), splits["test"])
