"""Mixed precision (train.precision) and channels-last (every method under bf16: test_engine's conformance)."""

import json

import pytest
import torch

from conftest import tiny_config
from earlyreadout.distributed import DistInfo, autocast, grad_scaler
from earlyreadout.errors import ConfigError
from earlyreadout.train.engine import build_run, train

CPU = torch.device("cpu")


def quiet(_message: str) -> None:
    pass


def test_precision_switches():
    x = torch.randn(4, 8)
    w = torch.randn(8, 3)
    with autocast(CPU, "fp32"):
        assert (x @ w).dtype == torch.float32
    with autocast(CPU, "bf16"):
        assert (x @ w).dtype == torch.bfloat16
    assert not grad_scaler(CPU, "fp32").is_enabled() and not grad_scaler(CPU, "bf16").is_enabled()
    assert grad_scaler(CPU, "fp16").is_enabled()


def test_bf16_run_resumes_like_an_uninterrupted_one_and_differs_from_fp32(tmp_path):
    opts = {"precision": "bf16"}
    full = train(tiny_config(tmp_path / "full", train=opts), log=quiet)
    train(tiny_config(tmp_path / "cut", train={**opts, "epochs": 1}), log=quiet)
    resumed = train(tiny_config(tmp_path / "cut", train=opts), resume=True, log=quiet)
    resumed["train_time_s"] = full["train_time_s"]
    assert resumed == full
    fp32 = train(tiny_config(tmp_path / "fp32"), log=quiet)
    rows = [json.loads(line) for line in (tmp_path / "fp32" / "run" / "log.jsonl").read_text().splitlines()]
    bf16 = [json.loads(line) for line in (tmp_path / "full" / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["train"]["loss"] != bf16[0]["train"]["loss"]  # the switch reaches the arithmetic
    assert abs(fp32["test"]["average_accuracy"] - full["test"]["average_accuracy"]) < 0.2


def test_fp16_run_scales_its_loss_and_saves_the_scale(tmp_path):
    train(tiny_config(tmp_path, train={"precision": "fp16", "epochs": 1}), log=quiet)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["method_state"]["scaler"]["scale"] > 0  # an active scaler has a scale to resume with


def test_channels_last_trains_and_stores_a_plain_state_dict(tmp_path):
    result = train(tiny_config(tmp_path, train={"channels_last": True, "epochs": 1}), log=quiet)
    assert 0.0 <= result["test"]["average_accuracy"] <= 1.0
    saved = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert all(torch.isfinite(v.float()).all() for v in saved.values())


def test_compiled_network_trains_and_saves_the_plain_state_dict(tmp_path):
    cfg = tiny_config(tmp_path, train={"compile": True, "epochs": 1})
    method, _, _ = build_run(cfg, torch.device("cpu"), DistInfo())
    assert isinstance(method.network, torch._dynamo.eval_frame.OptimizedModule)  # the network is compiled
    result = train(cfg, log=quiet)
    assert 0.0 <= result["test"]["average_accuracy"] <= 1.0
    saved = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert not any(k.startswith("_orig_mod") for k in saved)  # loadable into the plain model


def test_compile_is_refused_for_methods_that_read_layers_through_hooks(tmp_path):
    with pytest.raises(ConfigError, match="train.compile: method 'sieve' reads layers through forward hooks"):
        tiny_config(tmp_path, "sieve", train={"compile": True})
