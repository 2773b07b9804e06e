"""The GPU path: every method on CUDA in fp32, bf16 and fp16, channels-last, and a two-process run (NCCL with
two GPUs, else gloo sharing one). Skipped where no CUDA device is present; run on a GPU machine with
`pytest tests/test_cuda.py`."""

import json

import pytest
import torch

from conftest import reloaded_test_metrics, tiny_config
from earlyreadout.methods import METHODS
from earlyreadout.train.engine import train
from test_distributed import TEXT, train_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    train(tiny_config(tmp, train={"epochs": 1, "device": "cuda"}), log=quiet)
    return str(tmp / "run")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_on_cuda(name, precision, tmp_path, teacher):
    hp = {"teacher": teacher} if "teacher" in METHODS.get(name).hparams else {}
    result = train(tiny_config(tmp_path, name, hp=hp, train={"device": "cuda", "precision": precision,
                                                             "channels_last": True}), log=quiet)
    # the saved model, reloaded on the CPU in fp32, is the one evaluated: the same test accuracy within one of
    # the 48 test examples in fp32 (cuDNN's TF32 convolutions round differently from the CPU's), two under
    # bf16 / fp16 rounding
    reloaded = reloaded_test_metrics(tmp_path / "run")
    tolerance = (1 if precision == "fp32" else 2) / reloaded["n"]
    assert abs(reloaded["average_accuracy"] - result["test"]["average_accuracy"]) <= tolerance
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(v)) for row in rows for v in row["train"].values())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_processes_on_cuda(precision, tmp_path):
    train_cli(TEXT[:TEXT.index("--device")] + ["--device", "cuda", f"train.precision={precision}",
                                              "train.eval_batch_size=16", "--epochs", "2"], tmp_path / "run",
              processes=2)
    assert (tmp_path / "run" / "done").exists()
