import json

import pytest
import torch

from conftest import tiny_config, tiny_splits
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.readout.probe import cross_fitted_probe, grid_pool, logistic_probe_accuracy, probe_layer
from earlyreadout.report.plots import measures_png, series
from earlyreadout.train.engine import train


def quiet(_message):
    pass


def test_grid_pool_shapes_and_values():
    maps = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    pooled = grid_pool(maps)
    assert pooled.shape == (2, 3 * 16)
    assert pooled[0, 0].item() == pytest.approx((0 + 1 + 8 + 9) / 4)  # top-left 2x2 cell of channel 0
    assert grid_pool(torch.ones(2, 5, 4)).shape == (2, 4)  # tokens: mean over the sequence
    vectors = torch.randn(3, 7)
    assert torch.equal(grid_pool(vectors), vectors)
    with pytest.raises(ValueError, match="cannot pool"):
        grid_pool(torch.zeros(2))


def test_probe_finds_what_is_there_and_nothing_else():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 10, generator=gen)
    x[:, 3] += x[:, 3].sign()  # one informative direction, with a margin around its boundary
    y = (x[:, 3] > 0).long()
    assert logistic_probe_accuracy(x[:200], y[:200], x[200:], y[200:]) == 1.0
    noise = torch.randint(0, 2, (400,), generator=gen)  # a target the features do not hold
    assert 0.35 < cross_fitted_probe(x, noise) < 0.65


def test_probe_layer_reads_the_tint_at_the_first_block_of_an_untrained_cnn():
    val = tiny_splits("colored-digits", size=16, n_val=200)["val"]
    torch.manual_seed(0)
    model = SmallCNN(in_channels=3, n_classes=2, width=8).train()
    result = probe_layer(model, "block1", val, "cpu")
    assert result["probe_spurious"] > 0.9  # the colour is in the input, so in any first block
    assert set(result) == {"probe_core", "probe_spurious"} and model.training


@pytest.mark.parametrize("probe", [True, False])
def test_sieve_logs_fresh_probes_each_epoch_and_the_report_plots_them(tmp_path, probe):
    train(tiny_config(tmp_path, "sieve", hp={"probe": probe}), log=quiet)
    rows = [json.loads(r) for r in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    probes = {"probe_core", "probe_spurious"}
    epochs, curves = series([rows], "measures")
    if probe:
        assert all(probes <= set(r["measures"]) for r in rows)
        assert epochs.tolist() == [1, 2] and curves["probe_spurious"].shape == (1, 2)
    else:
        assert not any(probes & set(r["measures"]) for r in rows)
    assert curves["counterfactual_reliance"].shape == (1, 2)  # the sieve's other measures, logged either way
    assert measures_png("sieve", [rows]) is not None
