import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import tiny_config
from earlyreadout.distributed import DistInfo, autocast
from earlyreadout.errors import UserError
from earlyreadout.io import load_checkpoint
from earlyreadout.methods import METHODS
from earlyreadout.train.engine import build_run, eval_batch_size, train
from earlyreadout.train.runs import RunDir, load_trained


def quiet(_msg: str) -> None:
    pass


def test_run_directory_is_self_describing(tmp_path):
    cfg = tiny_config(tmp_path)
    result = train(cfg, log=quiet)
    run = tmp_path / "run"
    for name in ("config.yaml", "versions.json", "log.jsonl", "metrics.json", "done",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result))
    for key in ("method", "dataset", "seed", "selected_by", "best_epoch", "val", "test"):
        assert key in metrics
    for key in ("average_accuracy", "worst_group_accuracy", "adjusted_accuracy", "groups", "ece"):
        assert key in metrics["test"]
    assert {"name", "label", "attribute", "n", "accuracy"} <= set(metrics["test"]["groups"][0])
    assert metrics["selected_by"] == "val worst_group"
    rows = [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    best = max(rows, key=lambda r: r["val"]["worst_group_accuracy"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["val"]["worst_group_accuracy"] == pytest.approx(best["val"]["worst_group_accuracy"])
    assert best["val"] == metrics["val"]  # per-group metrics have one shape: the log's val is metrics.json's


def test_selected_checkpoint_is_restored_for_test(tmp_path):
    cfg = tiny_config(tmp_path, train={"epochs": 3})
    train(cfg, log=quiet)
    _, model, _ = load_trained(tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_same_seed_same_result(tmp_path):
    a = train(tiny_config(tmp_path / "a"), log=quiet)
    b = train(tiny_config(tmp_path / "b"), log=quiet)
    c = train(tiny_config(tmp_path / "c", train={"seed": 1}), log=quiet)
    assert a["test"] == b["test"] and a["val"] == b["val"]
    assert a["val"] != c["val"] or a["test"] != c["test"]


def test_existing_run_is_not_overwritten(tmp_path):
    cfg = tiny_config(tmp_path)
    train(cfg, log=quiet)
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    with pytest.raises(UserError, match="already holds a run; pass --resume"):
        train(cfg, log=quiet)
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint to resume"):
        train(tiny_config(tmp_path), resume=True, log=quiet)


def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    args = ["train", "--data", "colored-digits", "--epochs", "3", "--batch-size", "8",
            "data.n_train=1500", "data.n_val=48", "data.n_test=48", "data.size=16", "model.width=8"]
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "earlyreadout"]
    full = tmp_path / "full"
    subprocess.run(cmd + args + ["--out", str(full)], check=True, env=env, capture_output=True)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(cmd + args + ["--out", str(cut)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = cut / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.05)
    time.sleep(0.3)  # inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "done").exists(), "the run finished before it could be killed"
    subprocess.run(cmd + ["train", "--resume", "--out", str(cut)], check=True, env=env, capture_output=True)
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    b["train_time_s"] = a["train_time_s"]
    assert a == b
    assert [json.loads(r)["epoch"] for r in log.read_text().splitlines()] == [0, 1, 2]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    train(tiny_config(tmp, train={"epochs": 1}), log=quiet)
    return str(tmp / "run")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_conforms(name, precision, tmp_path, teacher_run):
    """Construct, a few updates (under the engine's autocast for bf16), finite stats, predict shape, every
    network parameter trained, master weights kept in fp32."""
    method_cls = METHODS.get(name)
    method_opts = {"teacher": teacher_run} if "teacher" in method_cls.hparams else {}
    cfg = tiny_config(tmp_path, name, hp=method_opts, train={"precision": precision})
    method, splits, loader = build_run(cfg, torch.device("cpu"), DistInfo())
    before = {k: v.detach().clone() for k, v in method.network.named_parameters()}
    method.train()
    method.on_epoch_start(0)
    for step, batch in zip(range(3), loader):
        with autocast(torch.device("cpu"), precision):
            stats = method.update(batch, step)
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values()), stats
    x = splits["val"].tensors()[:5]
    assert method.predict(x).shape == (5, splits["val"].n_classes)
    assert all(p.dtype == torch.float32 for p in method.network.parameters())
    frozen = getattr(method, "frozen_parameters", set())
    unchanged = [k for k, v in method.network.named_parameters()
                 if v.requires_grad and k not in frozen and torch.equal(v, before[k])]
    assert not unchanged, f"no update reached {unchanged}"


def test_a_run_that_cannot_start_leaves_nothing_blocking_its_retry(tmp_path):
    from earlyreadout.config import build_config

    bad = build_config({"data": {"name": "waterbirds", "root": str(tmp_path / "missing")},
                        "out": str(tmp_path / "run")})
    with pytest.raises(UserError, match="missing"):
        train(bad, log=quiet)
    assert not (tmp_path / "run" / "config.yaml").exists()
    train(tiny_config(tmp_path), log=quiet)
    assert (tmp_path / "run" / "done").exists()


def test_atomic_writes_leave_no_temp_files_and_usual_permissions(tmp_path):
    from earlyreadout.io import save_checkpoint, write_json

    write_json({"a": float("nan")}, tmp_path / "m.json")
    save_checkpoint({"w": torch.ones(2)}, tmp_path / "c.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "m.json"]
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None}
    assert (tmp_path / "m.json").stat().st_mode & 0o044 == 0o044 & ~os.umask(os.umask(0))
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["w"], torch.ones(2))


def test_eval_batch_size_follows_the_input_size_unless_given():
    assert eval_batch_size(None, {"shape": (3, 224, 224)}) == 64  # 602 KB per image: 106 fit in 64 MB -> 64
    assert eval_batch_size(None, {"shape": (3, 28, 28)}) == 512  # capped
    assert eval_batch_size(None, {"shape": (3, 2048, 2048)}) == 16  # at least 16
    assert eval_batch_size(None, {"modality": "text"}) == 512
    assert eval_batch_size(7, {"shape": (3, 224, 224)}) == 7


def test_train_or_reuse_trains_resumes_and_then_reads(tmp_path):
    calls = []

    def counting_train(cfg, resume=False, **options):
        calls.append(resume)
        return train(cfg, resume=resume, **options)

    run = RunDir(tmp_path / "run")
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    first = run.train_or_reuse(cfg, counting_train, log=quiet)
    run.done.unlink()  # as if killed after its last checkpoint: it resumes and finishes
    longer = tiny_config(tmp_path, train={"epochs": 2})
    second = run.train_or_reuse(longer, counting_train, log=quiet)
    assert calls == [False, True] and first["epochs"] == 1 and second["epochs"] == 2
    assert run.train_or_reuse(longer, counting_train, log=quiet) == second and calls == [False, True]
