import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from conftest import reloaded_test_metrics, tiny_config
from earlyreadout.cli import main
from earlyreadout.config import build_config
from earlyreadout.distributed import DistInfo
from earlyreadout.errors import UserError
from earlyreadout.methods.distill.distill_losses import (
    distillation_loss,
    kd_divergence,
    per_instance_distillation,
)
from earlyreadout.readout.weighters import CrossFitReadoutWeighter, LiveReadoutWeighter
from earlyreadout.train.engine import build_run, train

LN3 = math.log(3.0)
# Teacher p = (3/4, 1/4), student p = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2).
KL_34 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def quiet(_msg: str) -> None:
    pass


def test_kd_divergence_by_hand_with_temperature_and_t_squared():
    student = torch.zeros(1, 2)
    assert kd_divergence(student, torch.tensor([[LN3, 0.0]]), 1.0).item() == pytest.approx(KL_34, rel=1e-6)
    # At T = 2 the teacher logits 2 ln 3 give the same softened distribution; the loss is scaled by T^2 = 4.
    assert kd_divergence(student, torch.tensor([[2 * LN3, 0.0]]), 2.0).item() == pytest.approx(4 * KL_34, rel=1e-6)
    same = torch.tensor([[1.0, -2.0, 0.5]])
    assert kd_divergence(same, same, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_mixed_and_weighted_loss_by_hand():
    student = torch.zeros(2, 2)
    teacher = torch.tensor([[LN3, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    kd, ce = [KL_34, 0.0], [math.log(2), math.log(2)]
    per = per_instance_distillation(student, teacher, y, temperature=1.0, kd_weight=0.25)
    assert per.tolist() == pytest.approx([0.25 * kd[i] + 0.75 * ce[i] for i in range(2)], rel=1e-6)

    w = torch.tensor([3.0, 1.0])
    only_kd = per_instance_distillation(student, teacher, y, 1.0, 0.25, w, "kd")
    assert only_kd.tolist() == pytest.approx([0.25 * 3 * kd[0] + 0.75 * ce[0], 0.75 * ce[1]], rel=1e-6)
    only_ce = per_instance_distillation(student, teacher, y, 1.0, 0.25, w, "ce")
    assert only_ce.tolist() == pytest.approx([0.25 * kd[0] + 0.75 * 3 * ce[0], 0.75 * ce[1]], rel=1e-6)
    both = [3 * (0.25 * kd[0] + 0.75 * ce[0]), 0.75 * ce[1]]
    assert distillation_loss(student, teacher, y, 1.0, 0.25, w).item() == pytest.approx(sum(both) / 2, rel=1e-6)
    normalized = distillation_loss(student, teacher, y, 1.0, 0.25, w, normalize=True).item()
    assert normalized == pytest.approx(sum(both) / 4, rel=1e-6)  # divided by the mean weight, 2
    assert distillation_loss(student, teacher, y, 1.0, 0.25, torch.ones(2), normalize=True).item() == \
        pytest.approx(distillation_loss(student, teacher, y, 1.0, 0.25).item())


def test_readout_weighter_weights_errors_by_their_margin():
    model = nn.Sequential()
    model.add_module("feat", nn.Identity())
    weighter = LiveReadoutWeighter(model, "feat", n_classes=2, example_input=torch.zeros(2, 2), alpha=0.5,
                                   beta=2.0)
    with torch.no_grad():
        weighter.readout.head("feat").out.weight.copy_(torch.eye(2))
        weighter.readout.head("feat").out.bias.zero_()
    model(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))  # readout logits = inputs
    w = weighter.weights(torch.tensor([1, 1]))  # first: wrong with margin tanh(1); second: right
    assert w.tolist() == pytest.approx([math.exp(2.0 * math.tanh(1.0) ** 0.5), 1.0], rel=1e-5)
    weighter.update(torch.tensor([1, 1]))
    assert weighter.readout.head("feat").out.weight[0, 0] < 1.0  # one step towards the labels


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    train(tiny_config(tmp, train={"epochs": 1}), log=quiet)
    return str(tmp / "run")


def built(tmp_path, method, teacher, **hp):
    return build_run(tiny_config(tmp_path, method, hp={"teacher": teacher, **hp}), torch.device("cpu"), DistInfo())


@pytest.mark.parametrize("cache", [True, False])
def test_teacher_is_frozen_and_cache_matches_live_logits(tmp_path, teacher, cache):
    method, _, loader = built(tmp_path, "kd", teacher, cache_teacher=cache)
    model = method.teacher.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method.train()
    method.on_epoch_start(0)
    for step, batch in zip(range(3), loader):
        method.update(batch, step)
        with torch.no_grad():
            live = model(batch["x"])
        assert torch.allclose(method.teacher.logits(batch), live, atol=1e-5)
    assert not model.training
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics included
    assert not any(k.startswith("teacher") for k in method.state_dict())  # not copied into checkpoints


def test_dedier_refreshes_each_epoch_after_warmup_and_early_layers_learn(tmp_path, teacher):
    method, _, loader = built(tmp_path, "dedier", teacher, warmup_epochs=1, readout_layer="stage:1")
    assert method.readout_layer == "block1"
    block1 = method.network.block1[0].weight.detach().clone()
    method.train()
    seen = []
    for epoch in range(3):
        method.on_epoch_start(epoch)
        loader.set_epoch(epoch)
        weights = [method.instance_weights(b) for b in loader]
        seen.append((method.refreshes, weights[0] is None))
        for step, batch in zip(range(2), loader):
            stats = method.update(batch, step)
    assert seen == [(0, True), (1, False), (2, False)]
    assert "mean_weight" in stats
    method.on_epoch_start(3)  # a refresh on the network as it is now; then the readout's own predictions
    x, y = loader.dataset.tensors(), loader.dataset.y
    method.network.eval()
    with torch.no_grad():
        method.network(x)
        wrong = method.weighter.logits().argmax(1) != y
    assert method.weights.shape == (96,) and wrong.any() and not wrong.all()
    assert torch.equal(method.weights > 1, wrong) and (method.weights[~wrong] == 1).all()  # exactly its errors
    assert not torch.equal(method.network.block1[0].weight, block1)  # not frozen by the readout


def test_dedier_cross_fitted_refresh_uses_the_readout_reweighter(tmp_path, teacher):
    method, splits, _ = built(tmp_path, "dedier", teacher, folds=2, warmup_epochs=0, readout_epochs=2)
    torch.manual_seed(5)
    method.on_epoch_start(0)
    torch.manual_seed(5)
    seed = int(torch.randint(2**31 - 1, ()))
    settings = {k: method.hp[k] for k in ("alpha", "beta", "readout_head", "readout_depth", "readout_width",
                                          "readout_token_pool", "readout_lr", "readout_epochs", "folds")}
    expected = CrossFitReadoutWeighter(method.network, "block1", 2, splits["train"].tensors()[:2], **settings
                                       ).weights(splits["train"], seed, 16)
    assert method.refreshes == 1 and torch.equal(method.weights, expected)


def test_dedier_online_weights_each_batch_from_the_live_readout(tmp_path, teacher):
    method, _, loader = built(tmp_path, "dedier", teacher, refresh="online", warmup_epochs=1)
    head = method.weighter.readout.head("block1").out.weight
    method.train()
    method.on_epoch_start(0)
    batch = next(iter(loader))
    start = head.detach().clone()
    assert "mean_weight" not in method.update(batch, 0)  # warm-up: uniform, but the readout learns
    assert not torch.equal(head, start)
    method.on_epoch_start(1)
    assert "mean_weight" in method.update(batch, 1)
    assert method.refreshes == 0


@pytest.mark.parametrize("data, hp", [
    ("colored-digits", {"readout_layer": "block2", "readout_head": "conv", "readout_width": 8}),
    ("spurious-text", {"readout_layer": "encoder.layers.0", "readout_head": "mlp", "readout_token_pool": "mean"}),
])
def test_dedier_reads_any_layer_with_any_head(tmp_path, data, hp):
    train(tiny_config(tmp_path / "t", data=data, train={"epochs": 1}), log=quiet)
    cfg = tiny_config(tmp_path / "s", "dedier", data=data,
                      hp={"teacher": str(tmp_path / "t" / "run"), "warmup_epochs": 0, **hp})
    method, _, loader = build_run(cfg, torch.device("cpu"), DistInfo())
    method.train()
    method.on_epoch_start(0)
    stats = method.update(next(iter(loader)), 0)
    assert method.refreshes == 1 and "mean_weight" in stats and math.isfinite(stats["loss"])


def test_class_count_mismatch_is_a_clear_error(tmp_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ten")
    train(tiny_config(tmp, train={"epochs": 1}, data_options={"labels": "multiclass"}), log=quiet)
    with pytest.raises(UserError, match="predicts 10 classes but colored-digits has 2"):
        built(tmp_path, "kd", str(tmp / "run"))
    with pytest.raises(UserError, match="needs a teacher"):
        build_run(tiny_config(tmp_path, "kd"), torch.device("cpu"), DistInfo())


def test_unknown_readout_stage_lists_the_stages(tmp_path, teacher):
    with pytest.raises(UserError, match=r"stage:1 \.\. stage:4 \(block1, block2, block3, block4\)"):
        built(tmp_path, "dedier", teacher, readout_layer="stage:9")
    with pytest.raises(UserError, match="did you mean"):
        built(tmp_path, "dedier", teacher, readout_layer="block")


@pytest.mark.parametrize("method, hp", [("kd", {}), ("dedier", {}), ("dedier", {"refresh": "online"}),
                                        ("jtt-kd", {"erm_epochs": 1})])
def test_each_method_trains_through_the_engine(tmp_path, teacher, method, hp):
    result = train(tiny_config(tmp_path, method, hp={"teacher": teacher, **hp}), log=quiet)
    reloaded = reloaded_test_metrics(tmp_path / "run")  # the student it saved is the one it evaluated
    assert result["method"] == method
    assert reloaded["worst_group_accuracy"] == pytest.approx(result["test"]["worst_group_accuracy"])
    assert reloaded["average_accuracy"] == pytest.approx(result["test"]["average_accuracy"])


def test_jtt_kd_upweights_the_erm_errors(tmp_path, teacher):
    method, splits, _ = built(tmp_path, "jtt-kd", teacher, lambda_up=7.0, erm_epochs=1)
    method.on_epoch_start(0)
    assert set(method.weights.unique().tolist()) <= {1.0, 7.0}
    from_run, _, _ = built(tmp_path / "r", "jtt-kd", teacher, lambda_up=7.0, erm_run=teacher)
    from_run.on_epoch_start(0)
    assert from_run.weights.shape == (len(splits["train"]),)


def test_dedier_resume_matches_uninterrupted(tmp_path, teacher):
    hp = {"teacher": teacher, "warmup_epochs": 1, "reinit_readout": False}
    full = train(tiny_config(tmp_path / "full", "dedier", hp=hp, train={"epochs": 3}), log=quiet)
    train(tiny_config(tmp_path / "cut", "dedier", hp=hp, train={"epochs": 2}), log=quiet)
    resumed = train(tiny_config(tmp_path / "cut", "dedier", hp=hp, train={"epochs": 3}), resume=True, log=quiet)
    assert resumed["test"] == full["test"] and resumed["val"] == full["val"]


def test_cli_distill_defaults_to_the_teachers_data_and_refuses_non_distillers(tmp_path, teacher, capsys):
    args = ["distill", "--teacher", teacher, "--student", "small-cnn", "--method", "kd", "--epochs", "1",
            "model.width=4", "train.batch_size=32", "--out", str(tmp_path / "s")]
    assert main(args) == 0
    saved = (tmp_path / "s" / "config.yaml").read_text()
    assert "n_train: 96" in saved and f"teacher: {teacher}" in saved and "width: 4" in saved
    assert main(["distill", "--teacher", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert main(["distill", "--teacher", teacher, "--method", "erm", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a finished run" in err[0] and "use --method dedier, jtt-kd, kd" in err[1]


def test_docs_loop_example_runs():
    text = (Path(__file__).parents[1] / "docs" / "distillation.md").read_text()
    snippet = re.search(r"<!-- tested -->\n```python\n(.*?)```", text, re.DOTALL)
    assert snippet, "docs/distillation.md lost its tested example"
    exec(compile(snippet.group(1), "docs/distillation.md", "exec"), {})  # noqa: S102 (our own docs)


def test_a_relative_teacher_path_is_stored_absolute_and_resumes_from_elsewhere(tmp_path, teacher, monkeypatch):
    teacher_path = Path(teacher)
    monkeypatch.chdir(teacher_path.parent.parent)
    relative = str(teacher_path.relative_to(teacher_path.parent.parent))
    cfg = tiny_config(tmp_path, "kd", hp={"teacher": relative}, train={"epochs": 1})
    assert cfg.method.settings["teacher"] == str(teacher_path)
    train(cfg, log=quiet)
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["method"]["teacher"] == str(teacher_path)
    monkeypatch.chdir(tmp_path)  # somewhere the relative path means nothing
    (tmp_path / "run" / "done").unlink()
    resumed = build_config({**stored, "train": {**stored["train"], "epochs": 2}})
    assert train(resumed, resume=True, log=quiet)["epochs"] == 2
