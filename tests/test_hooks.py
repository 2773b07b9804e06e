"""Layer lookup by path, forward-hook taps, and the parameters a layer depends on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.models.layers import FeatureTap, as_tensor, call_model, find_module, parameters_feeding


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return SmallCNN(3, 2, width=4).eval()


def test_find_module_by_path_and_through_wrappers(cnn):
    assert find_module(cnn, "block2.0") is cnn.block2[0]
    wrapped = nn.DataParallel(cnn)
    assert find_module(wrapped, "module.block1") is cnn.block1
    assert find_module(wrapped, "block1") is cnn.block1


def test_unknown_path_lists_close_matches(cnn):
    with pytest.raises(UserError, match="did you mean 'block1'") as e:
        find_module(cnn, "blok1")
    assert "top-level layers: block1, block2, block3, block4, pool, fc" in str(e.value)
    with pytest.raises(UserError, match="no layer ''"):
        find_module(cnn, "")


def test_tap_records_the_direct_outputs(cnn):
    x = torch.randn(3, 3, 16, 16)
    with FeatureTap(cnn, ["block1", "block3", "block1"]) as tap:
        out = cnn(x)
        assert list(tap.features) == ["block1", "block3"]
        assert torch.equal(tap.features["block1"], cnn.block1(x))
        assert torch.equal(tap.features["block3"], cnn.block3(cnn.block2(cnn.block1(x))))
    assert torch.equal(out, cnn(x))
    assert no_hooks_left(cnn)


def test_close_removes_every_hook(cnn):
    tap = FeatureTap(cnn, ["block1", "block2", "fc"])
    assert not no_hooks_left(cnn)
    tap.close()
    assert no_hooks_left(cnn)
    assert tap.features == {}


def test_as_tensor_reads_tuples_and_model_outputs():
    t = torch.ones(2)
    assert as_tensor(t) is t
    assert as_tensor((t, None)) is t
    assert as_tensor(SimpleNamespace(last_hidden_state=t)) is t
    with pytest.raises(TypeError, match="dict"):
        as_tensor({"x": t})


def test_call_model_spreads_mappings():
    class Kw(nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return input_ids * attention_mask

    ids, mask = torch.tensor([1, 2]), torch.tensor([1, 0])
    assert call_model(Kw(), {"input_ids": ids, "attention_mask": mask}).tolist() == [1, 0]
    assert call_model(nn.Identity(), ids) is ids


def test_parameters_feeding_are_the_stages_up_to_the_layer(cnn):
    cnn.train()
    names = parameters_feeding(cnn, "block2", torch.randn(2, 3, 16, 16))
    assert names == ["block1.0.weight", "block1.1.weight", "block1.1.bias",
                     "block2.0.weight", "block2.1.weight", "block2.1.bias"]
    assert no_hooks_left(cnn)
    assert cnn.training  # its mode is restored
