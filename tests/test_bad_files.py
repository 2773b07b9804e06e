"""Broken or hostile files give one clear line and exit code 2, and leave the run directory as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import folder_digest

RUN = ["--data", "colored-digits", "data.n_train=64", "data.n_val=32", "data.n_test=32", "data.size=16",
       "model.width=4", "--epochs", "1", "--batch-size", "32", "--device", "cpu"]


class Planted:
    """Unpickling this would create the marker file (it must never happen)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true"}
    return subprocess.run([sys.executable, "-m", "earlyreadout", *args], check=False, capture_output=True, text=True,
                          cwd=cwd, env=env)



@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    assert cli("train", *RUN, "--out", "run", cwd=tmp).returncode == 0
    return tmp / "run"


def broken_copy(finished: Path, tmp_path: Path, name: str, damage) -> Path:
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(finished), str(run)], check=True)
    (run / "done").unlink()  # an interrupted run, to be resumed
    damage(run / "checkpoints" / name)
    return run


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name, damage, expected", [
    ("last.pt", truncate, "is truncated or not a PyTorch checkpoint"),
    ("last.pt", lambda p: p.write_bytes(b""), "is truncated or not a PyTorch checkpoint"),
    ("last.pt", lambda p: p.write_text("not a checkpoint"), "is truncated or not a PyTorch checkpoint"),
    ("last.pt", lambda p: torch.save({"x": Planted(p.parent / "pwned")}, p), "refused on purpose"),
])
def test_a_broken_checkpoint_is_one_line_and_changes_nothing(finished, tmp_path, name, damage, expected):
    run = broken_copy(finished, tmp_path, name, damage)
    before = folder_digest(run)
    result = cli("train", "--resume", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "checkpoints/best.pt (the model selected so far) is usable" in lines[0]
    assert folder_digest(run) == before
    assert not (run / "checkpoints" / "pwned").exists()


def test_search_refuses_zero_trials(tmp_path):
    result = cli("search", *RUN, "--method", "groupdro", "--out", "s", "--trials", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "'trials' parameter of search must be an int in the range [1, inf)" in result.stderr
