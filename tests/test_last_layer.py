"""Last-layer retraining: DFR against a direct scikit-learn computation, the pure pieces against hand-computed
cases, and the methods and the retrain command on tiny runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from conftest import folder_digest, tiny_config
from earlyreadout.errors import UserError
from earlyreadout.io import load_checkpoint
from earlyreadout.lastlayer.afr import fit_afr
from earlyreadout.lastlayer.dfr import L1, balanced_subsample, dfr, plan, worst_group_accuracy
from earlyreadout.lastlayer.disagreement import disagreement, top_k
from earlyreadout.lastlayer.embeddings import classifier_path
from earlyreadout.lastlayer.pseudo_groups import pseudo_groups
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.readout.weights import afr_weights
from earlyreadout.train.engine import train
from earlyreadout.train.retrain import retrain
from earlyreadout.train.runs import load_trained


def quiet(_msg: str) -> None:
    pass


def spurious_embeddings(n: int = 400, seed: int = 0):
    """Embeddings where dimension 0 carries the label and dimension 1 a spurious attribute that agrees with it
    on 90 % of the examples, plus noise dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.9, y, 1 - y)
    z = rng.normal(size=(n, 6))
    z[:, 0] += 1.5 * (2 * y - 1)
    z[:, 1] += 3.0 * (2 * a - 1)
    return z, y, y * 2 + a


def test_dfr_equals_a_direct_scikit_learn_computation():
    z, y, g = spurious_embeddings()
    grid = (1.0, 0.1, 0.01)
    head = dfr(z, y, g, 2, grid, tune_repeats=3, retrains=4, seed=5)
    steps = plan(g, 3, 4, 5)  # the same seeded subsamples
    scaler = StandardScaler().fit(z)
    x = scaler.transform(z)

    def fit(idx, c):
        return LogisticRegression(C=c, solver="liblinear", random_state=0, **L1).fit(x[idx], y[idx])

    scores = {c: np.mean([worst_group_accuracy(fit(f, c).predict(x[s]), y[s], g[s]) for f, s in steps.tuning])
              for c in grid}
    best = max(grid, key=lambda c: scores[c])
    models = [fit(idx, best) for idx in steps.final]
    coef = np.mean([m.coef_[0] for m in models], 0)
    intercept = np.mean([m.intercept_[0] for m in models])
    assert head.info["C"] == best
    assert head.info["tuning_worst_group"] == {str(c): pytest.approx(s) for c, s in scores.items()}
    direct = x @ coef + intercept  # the averaged model's decision function on standardised embeddings
    ours = head.logits(z)
    np.testing.assert_allclose(ours[:, 1] - ours[:, 0], direct, rtol=1e-6, atol=1e-6)


def test_dfr_beats_the_shortcut_that_plain_logistic_regression_takes():
    z, y, g = spurious_embeddings(seed=1)
    zt, yt, gt = spurious_embeddings(seed=2)
    plain = LogisticRegression().fit(z, y)
    head = dfr(z, y, g, 2, (1.0, 0.3, 0.1), tune_repeats=2, retrains=3, seed=0)
    assert worst_group_accuracy(head.logits(zt).argmax(1), yt, gt) > worst_group_accuracy(plain.predict(zt), yt, gt) + 0.1


def test_balanced_subsample_takes_the_smallest_group_size_from_each_group():
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    idx = balanced_subsample(groups, np.random.default_rng(0))
    assert sorted(groups[idx].tolist()) == [0, 0, 1, 1, 2, 2]
    assert len(set(idx.tolist())) == 6


def test_pseudo_groups_by_predicted_class_keep_minorities_apart_and_merge_stray_ones():
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    y = np.array([0, 0, 0, 1, 1])
    assert pseudo_groups(probs, y, 3, "predicted").tolist() == [0, 1, 2, 4, 3]
    assert pseudo_groups(probs, y, 3, "flagged").tolist() == [0, 1, 1, 2, 3]
    # groups below min_size join the label's agreeing group: (y=0, pred=1) and (y=0, pred=2) have one member
    assert pseudo_groups(probs, y, 3, "predicted", min_size=2).tolist() == [0, 0, 0, 4, 4]


def test_afr_weights_hand_computed():
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]]))
    y = torch.tensor([0, 0, 1])
    raw = torch.exp(-2.0 * torch.tensor([0.8, 0.5, 0.9]))
    assert torch.allclose(afr_weights(logits, y, 2.0, class_balanced=False), raw / raw.sum())
    balanced = torch.tensor([raw[0] / (raw[0] + raw[1]), raw[1] / (raw[0] + raw[1]), 1.0])
    assert torch.allclose(afr_weights(logits, y, 2.0), balanced / balanced.sum())


def test_afr_head_stays_at_the_erm_head_under_a_strong_pull():
    z, y = torch.randn(50, 4), torch.randint(0, 2, (50,))
    w0, b0 = torch.randn(2, 4), torch.zeros(2)
    w, _ = fit_afr(z, y, torch.full((50,), 1 / 50), w0, b0, lam=1e4, steps=50)
    assert torch.allclose(w, w0, atol=1e-2)
    w, _ = fit_afr(z, y, torch.full((50,), 1 / 50), w0, b0, lam=0.0, steps=50)
    assert not torch.allclose(w, w0, atol=1e-2)


def test_disagreement_is_the_kl_of_the_final_from_the_early_prediction():
    final = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    early = torch.log(torch.tensor([[0.5, 0.5], [0.1, 0.9]]))
    expected = 0.9 * np.log(0.9 / 0.1) + 0.1 * np.log(0.1 / 0.9)
    assert torch.allclose(disagreement(final, early), torch.tensor([0.0, expected], dtype=torch.float32))
    assert top_k(torch.tensor([0.1, 0.5, 0.3]), 2).tolist() == [1, 2]
    assert top_k(torch.tensor([0.1]), 5).tolist() == [0]


def test_classifier_is_the_last_linear_layer_with_one_output_per_class():
    assert classifier_path(SmallCNN(3, 2, 8), 2) == "fc"
    with pytest.raises(UserError, match="no nn.Linear layer with 5 outputs"):
        classifier_path(SmallCNN(3, 2, 8), 5)
    with pytest.raises(UserError, match="not an nn.Linear"):
        classifier_path(SmallCNN(3, 2, 8), 2, "block1")


FAST = {"dfr": {"retrains": 2, "tune_repeats": 1}, "readout-dfr": {"retrains": 2, "tune_repeats": 1},
        "afr": {"head_steps": 20, "gamma": 4.0}, "self": {"head_steps": 20}}
LABELS = {"dfr": "val groups", "readout-dfr": "none", "afr": "val groups (tuning only)",
          "self": "val groups (tuning only)"}


@pytest.mark.parametrize("name", sorted(FAST))
def test_a_last_layer_method_retrains_only_the_classifier_of_the_selected_model(name, tmp_path):
    result = train(tiny_config(tmp_path, name, hp=FAST[name]), log=quiet)
    run = tmp_path / "run"
    best, retrained = load_checkpoint(run / "checkpoints" / "best.pt"), load_checkpoint(run / "checkpoints" / "retrained.pt")
    assert not torch.equal(best["fc.weight"], retrained["fc.weight"])
    assert all(torch.equal(best[k], retrained[k]) for k in best if not k.startswith("fc."))
    _, model, _ = load_trained(run)  # the run's final model is the retrained one
    assert torch.equal(model.state_dict()["fc.weight"], retrained["fc.weight"])
    assert result["last_layer"]["classifier"] == "fc"
    assert result["last_layer"]["labels"] == LABELS[name]
    assert json.loads((run / "metrics.json").read_text())["last_layer"] == json.loads(json.dumps(result["last_layer"]))
    assert list((run / "embeddings").glob("*.pt"))


def test_afr_keeps_its_held_out_part_out_of_the_erm_stage(tmp_path):
    from earlyreadout.distributed import DistInfo
    from earlyreadout.train.engine import build_run

    method, splits, loader = build_run(tiny_config(tmp_path, "afr", hp={"holdout_fraction": 0.25}),
                                       torch.device("cpu"), DistInfo())
    assert int(method.held_out.sum()) == round(0.25 * len(splits["train"]))
    batch = next(iter(loader))
    assert torch.allclose(method.fits(batch), (~method.held_out[batch["idx"]]).float() / 0.75)


def test_self_keeps_the_early_checkpoint_and_refuses_runs_without_one(tmp_path):
    train(tiny_config(tmp_path / "self", "self", hp={"head_steps": 5, "k": 10}), log=quiet)
    state = load_checkpoint(tmp_path / "self" / "run" / "checkpoints" / "last.pt")
    early = state["method_state"]["extra"]["early_state"]
    assert not torch.equal(early["fc.weight"], state["method_state"]["method"]["network.fc.weight"])  # epoch 1 of 2
    again = retrain(tmp_path / "self" / "run", "self", tmp_path / "again", {"head_steps": 5, "k": 10}, log=quiet)
    assert again["last_layer"]["k"] == 10
    train(tiny_config(tmp_path / "erm", train={"epochs": 1}), log=quiet)
    with pytest.raises(UserError, match="only a run trained with --method self keeps"):
        retrain(tmp_path / "erm" / "run", "self", tmp_path / "out", log=quiet)
    with pytest.raises(UserError, match="method.reweight_on=val"):
        retrain(tmp_path / "erm" / "run", "afr", tmp_path / "out", log=quiet)
    assert not (tmp_path / "out").exists()
    assert retrain(tmp_path / "erm" / "run", "afr", tmp_path / "out", {"reweight_on": "val", "gamma": 2.0, "pull": 0.1,
                                                                       "head_steps": 5}, log=quiet)["last_layer"]["gamma"] == 2.0


def test_readout_dfr_never_reads_group_labels(tmp_path, monkeypatch):
    """Scrambling every split's attributes changes nothing the method computes (only the metrics)."""
    a = train(tiny_config(tmp_path / "a", "readout-dfr", hp={"retrains": 2, "tune_repeats": 1}), log=quiet)
    from earlyreadout.data.base import GroupedDataset

    real = GroupedDataset.g.fget
    monkeypatch.setattr(GroupedDataset, "g", property(lambda self: real(self).flip(0)))
    b = train(tiny_config(tmp_path / "b", "readout-dfr", hp={"retrains": 2, "tune_repeats": 1}), log=quiet)
    for key in ("C", "pseudo_group_sizes", "flagged_fraction"):
        assert a["last_layer"][key] == b["last_layer"][key]


def test_retrain_refits_a_finished_run_into_a_new_run_and_leaves_the_source_alone(tmp_path):
    train(tiny_config(tmp_path / "erm", train={"epochs": 1}), log=quiet)
    source = tmp_path / "erm" / "run"
    before = {k: v for k, v in folder_digest(source).items() if not k.startswith("embeddings/")}
    result = retrain(source, "dfr", tmp_path / "dfr", {"retrains": 2, "tune_repeats": 1}, log=quiet)
    after = {k: v for k, v in folder_digest(source).items() if not k.startswith("embeddings/")}
    assert before == after
    assert result["last_layer"]["source_run"] == str(source.resolve())
    assert (tmp_path / "dfr" / "done").exists() and (tmp_path / "dfr" / "checkpoints" / "retrained.pt").exists()
    again = retrain(source, "dfr", tmp_path / "dfr2", {"retrains": 2, "tune_repeats": 1}, log=quiet)
    assert again["test"] == result["test"]  # cached embeddings give the same head


@pytest.mark.parametrize("args, message", [
    (["--method", "erm"], "'erm' is not a last-layer method; choose one of"),
    (["data.n_train=5"], "retrain takes method.KEY=VALUE settings only"),
    (["method.c_grid=huge"], "c_grid"),
])
def test_retrain_refuses_bad_input_with_one_line(args, message, tmp_path):
    train(tiny_config(tmp_path / "erm", train={"epochs": 1}), log=quiet)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "earlyreadout", "retrain", "--run", str(tmp_path / "erm" / "run"),
                           "--out", str(out), *args], check=False, capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_retrain_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(UserError, match="not a finished run"):
        retrain(tmp_path / "nothing", "dfr", tmp_path / "out", log=quiet)


def test_a_mean_pooled_readout_on_token_embeddings_sees_the_words_and_cls_does_not(text_splits):
    from earlyreadout.lastlayer.embeddings import embed
    from earlyreadout.models.text import TextTransformer

    info = text_splits["train"].info
    model = TextTransformer(info["vocab_size"], info["max_len"], 2, 16, 1, 2, info["pad_id"]).eval()
    cls, mean = (embed(model, text_splits["val"], "fc", ["embed"], token_pool=p).early["embed"] for p in ("cls", "mean"))
    assert torch.allclose(cls, cls[:1].expand_as(cls))  # one [CLS] token for every sentence
    assert not torch.allclose(mean, mean[:1].expand_as(mean))


def test_dfr_with_three_classes_is_one_vs_rest_liblinear():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    z = rng.normal(size=(300, 5))
    z[np.arange(300), y] += 2.0
    head = dfr(z, y, y, 3, (1.0,), tune_repeats=1, retrains=1, seed=0)
    idx = plan(y, 1, 1, 0).final[0]
    scaler = StandardScaler().fit(z)
    x = scaler.transform(z)
    direct = np.stack([LogisticRegression(C=1.0, solver="liblinear", random_state=0, **L1)
                       .fit(x[idx], (y[idx] == k).astype(int)).decision_function(x) for k in range(3)], 1)
    np.testing.assert_allclose(head.logits(z), direct, rtol=1e-6, atol=1e-6)
    assert (head.logits(z).argmax(1) == y).mean() > 0.8


def test_a_two_class_dfr_head_gives_each_class_a_logit_that_reads_the_features():
    # logits (-s/2, s/2) for s = w.x + b: the softmax of (0, s), and class 0's Grad-CAM is not blank
    z, y, g = spurious_embeddings()
    head = dfr(z, y, g, 2, (1.0,), tune_repeats=1, retrains=2, seed=0)
    np.testing.assert_array_equal(head.weight[0], -head.weight[1])
    assert head.bias[0] == -head.bias[1]
    assert np.abs(head.weight[0]).sum() > 0
    s = head.logits(z)[:, 1] - head.logits(z)[:, 0]
    np.testing.assert_allclose(head.logits(z), np.stack([-s / 2, s / 2], 1), atol=1e-9)
