"""Two-process DDP training on CPU (gloo) through torchrun: it completes, only rank 0 writes, and the
final parameters equal a one-process run with the same global batch.

The comparison uses the text transformer, which normalises per example (LayerNorm, no dropout): with
BatchNorm each rank would normalise its half-batch by its own statistics (SyncBatchNorm, which the
engine uses on GPUs, has no CPU kernel), so the runs would legitimately differ.
"""

import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile

import pytest
import torch

from conftest import tiny_config
from earlyreadout.distributed import backend
from earlyreadout.io import load_checkpoint
from earlyreadout.methods import Method
from earlyreadout.train import engine

TEXT = ["--data", "spurious-text", "--model", "text-transformer", "model.dim=16", "model.layers=1",
        "model.heads=2", "data.n_train=96", "data.n_val=32", "data.n_test=32", "--epochs", "2",
        "--batch-size", "16", "--device", "cpu", "train.eval_batch_size=16"]
ENV = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launchers(processes: int, nodes: int) -> list[list[str]]:
    """The command prefix of each machine: one plain process, torchrun on one node, or torchrun once per node
    (node ranks 0..nodes-1) meeting at a c10d rendezvous on this machine, as two machines would."""
    if processes == nodes == 1:
        return [[sys.executable, "-m", "earlyreadout"]]
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    if nodes == 1:
        return [run + ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "earlyreadout"]]
    rendezvous = ["--nnodes", str(nodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{free_port()}",
                  "--rdzv_id", "test"]
    return [run + rendezvous + ["--node_rank", str(rank), "-m", "earlyreadout"] for rank in range(nodes)]


def train_cli(args: list[str], out, processes: int = 1, nodes: int = 1) -> None:
    overrides = [a for a in args if "=" in a]  # key=value overrides go after every flag
    flags = [a for a in args if "=" not in a] + ["--out", str(out)]
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(nodes)]
        procs = [subprocess.Popen(launcher + ["train"] + flags + overrides, env=ENV, stdout=subprocess.DEVNULL,
                                  stderr=log, text=True) for launcher, log in zip(launchers(processes, nodes), logs)]
        for proc, log in zip(procs, logs):
            proc.wait(timeout=300)
            log.seek(0)
            assert proc.returncode == 0, log.read()[-3000:]


def final_state(run) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "checkpoints" / "last.pt")["method_state"]["method"]
    return {k.replace("network.module.", "network."): v for k, v in state.items()}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    train_cli(TEXT + ["--epochs", "1"], out)
    return out


SIEVE = ["method.readout_head=linear", "method.forget_every=1", "method.forget_lr=0.1"]


@pytest.mark.slow
@pytest.mark.parametrize("method, hp", [
    ("groupdro", ["method.eta=0.5"]),
    ("jtt", ["method.erm_epochs=1", "method.lambda_up=4"]),
    ("sieve", SIEVE + ["method.mode=three-pass"]),  # aux and forget steps outside DDP's backward
    ("sieve", SIEVE + ["method.mode=single-pass"]),
    ("sieve", SIEVE + ["method.mode=three-pass", "method.reinit_every=2", "method.readout_steps=2"]),
    ("dedier", ["method.readout_head=linear", "method.refresh=online", "method.warmup_epochs=0"]),
    ("readout-reweight", ["method.warmup_epochs=0", "method.readout_epochs=2"]),
    ("readout-dfr", ["method.retrains=2", "method.tune_repeats=1", "method.readout_layer=stage:1"]),
    ("afr", ["method.gamma=2", "method.pull=0.1", "method.head_steps=20"]),  # ERM stage without the held-out part
    ("irm", ["method.penalty=10", "method.anneal_steps=4"]),  # penalties couple the global batch's examples
    ("mmd", ["method.gamma=10"]),
    ("coral", ["method.gamma=10"]),
    ("mixup", ["method.alpha=1"]),  # token ids: classifier inputs mixed across the global batch
    ("lisa", ["method.p_same_label=0.5"]),
    ("lff", ["method.q=0.5"]),  # the biased network outside DDP
    ("spare", ["method.clusters=2", "method.erm_epochs=1"]),  # inference on every rank's gathered outputs
    ("eiil", ["method.steps=200", "method.eta=0.5"]),
    ("reweight", []),
    ("sqrt-reweight", ["method.balance_by=class"]),
    ("resample", []),
    ("cbloss", ["method.beta=0.99"]),
    ("focal", ["method.gamma=2"]),
    ("ldam", []),
    ("bsoftmax", []),
    ("cvardro", ["method.alpha=0.3"]),  # the worst fraction of the global batch, not of each rank's half
    ("crt", ["method.erm_epochs=1"]),  # classifier steps outside DDP's forward
    ("reweight-crt", ["method.erm_epochs=1"]),
    ("vanilla-crt", ["method.erm_epochs=1"]),
])
def test_two_processes_match_one(method, hp, tmp_path, request):
    if method == "dedier":
        hp = hp + [f"method.teacher={request.getfixturevalue('teacher')}"]
    args = TEXT + ["--method", method] + hp
    train_cli(args, tmp_path / "one")
    train_cli(args, tmp_path / "two", processes=2)
    assert_same_run(tmp_path / "one", tmp_path / "two")


def assert_same_run(one_run, two_run) -> None:
    """Two runs of one config end with the same parameters (1e-5), selection, test metrics and last loss, and
    the many-process run's log was written once (by rank 0)."""
    one, two = final_state(one_run), final_state(two_run)
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k].double(), two[k].double(), atol=1e-5, rtol=1e-4), k
    if (one_run / "checkpoints" / "retrained.pt").exists():  # the last layer refitted the same way
        one, two = (load_checkpoint(run / "checkpoints" / "retrained.pt") for run in (one_run, two_run))
        assert all(torch.allclose(one[k].double(), two[k].double(), atol=1e-4, rtol=1e-3) for k in one)
    rows = (two_run / "log.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [0, 1]  # rank 1 wrote nothing
    a = json.loads((one_run / "metrics.json").read_text())
    b = json.loads((two_run / "metrics.json").read_text())
    assert a["test"]["n"] == b["test"]["n"] == 32  # metrics over the whole split, not one rank's shard
    assert a["best_epoch"] == b["best_epoch"]
    assert b["test"]["average_accuracy"] == pytest.approx(a["test"]["average_accuracy"])
    assert json.loads(rows[-1])["train"]["loss"] == pytest.approx(
        json.loads((one_run / "log.jsonl").read_text().splitlines()[-1])["train"]["loss"], rel=1e-4)


@pytest.mark.slow
def test_two_nodes_match_one_process_and_resume_on_two_nodes(tmp_path):
    args = TEXT + ["--method", "groupdro", "method.eta=0.5"]
    train_cli(args, tmp_path / "one")
    train_cli(args + ["--epochs", "1"], tmp_path / "two", nodes=2)  # the same run, cut after its first epoch
    assert [json.loads(r)["epoch"] for r in (tmp_path / "two" / "log.jsonl").read_text().splitlines()] == [0]
    train_cli(["--resume", "--epochs", "2"], tmp_path / "two", nodes=2)  # continued on two nodes
    assert_same_run(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
def test_batchnorm_model_trains_under_two_processes(tmp_path):
    train_cli(["--data", "colored-digits", "data.n_train=64", "data.n_val=32", "data.n_test=32", "data.size=16",
               "model.width=8", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--method", "groupdro"],
              tmp_path / "bn", processes=2)
    assert (tmp_path / "bn" / "done").exists()


def test_backend_is_nccl_only_with_a_gpu_per_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert backend(torch.device("cpu"), 2) == "gloo"
    assert backend(torch.device("cuda"), 1) == "nccl"
    assert backend(torch.device("cuda"), 2) == "gloo"  # two ranks sharing one GPU


def test_the_run_is_freed_before_the_process_group_is_left(tmp_path, digits_splits, monkeypatch):
    """A network alive at teardown keeps a gloo group until interpreter exit, where it can abort the process
    (benchmarks/ddp_teardown.py): `train` must leave the group only once its method is gone."""
    def methods() -> list[Method]:
        gc.collect()
        return [o for o in gc.get_objects() if issubclass(type(o), Method)]

    earlier = {id(m) for m in methods()}  # what other tests keep alive is not this run's
    alive = []

    def teardown() -> None:
        alive.extend(m for m in methods() if id(m) not in earlier)

    monkeypatch.setattr(engine.distributed, "teardown", teardown)
    result = engine.train(tiny_config(tmp_path, train={"epochs": 1}), log=lambda _: None, splits=digits_splits)
    assert result["test"]["n"] == 48
    assert alive == []
