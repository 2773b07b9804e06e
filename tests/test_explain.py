"""Grad-CAM and token attributions against cases whose answer is known by construction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.explain.gradcam import gradcam, region_mass, token_attributions, token_mass


class HalfSighted(nn.Module):
    """Sees only one half of the image: the other half is zeroed before the conv layer `features`."""

    def __init__(self, side: str, width: int = 16):
        super().__init__()
        mask = torch.zeros(1, 1, 1, width)
        mask[..., : width // 2] = 1.0
        self.register_buffer("mask", mask if side == "left" else mask.flip(-1))
        self.features = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.features.weight.fill_(0.1)
            self.head.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.features(x * self.mask))
        return self.head(h.mean((2, 3)))


LEFT, RIGHT = (0, 16, 0, 8), (0, 16, 8, 16)


@pytest.mark.parametrize("side, seen, unseen", [("left", LEFT, RIGHT), ("right", RIGHT, LEFT)])
def test_a_model_that_sees_one_half_lights_up_that_half(side, seen, unseen):
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    maps, logits = gradcam(HalfSighted(side), x, "features")
    assert maps.shape == (5, 16, 16)
    assert torch.equal(logits.argmax(1), torch.zeros(5, dtype=torch.long))
    assert (region_mass(maps, seen) > 0.9).all()
    assert (region_mass(maps, unseen) < 0.1).all()
    assert torch.allclose(maps.amax((1, 2)), torch.ones(5))


def test_gradcam_equals_the_closed_form_for_conv_pool_linear():
    # logit_c = sum_k W[c, k] mean(A_k) + b  =>  alpha_k = W[c, k] / (h w), cam = relu(sum_k alpha_k A_k)
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(2, 3, 1, bias=False))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(3, 2))
    x = torch.randn(4, 2, 6, 6)
    target = torch.tensor([0, 1, 1, 0])
    maps, _ = gradcam(model, x, "conv", target=target)
    with torch.no_grad():
        a = model.conv(x)
        w = model.fc.weight[target] / 36
        cam = torch.relu((w[:, :, None, None] * a).sum(1))
        peak = cam.amax((1, 2), keepdim=True)
        expected = torch.where(peak > 0, cam / peak, torch.zeros_like(cam))
    assert torch.allclose(maps, expected, atol=1e-5)


def test_frozen_model_still_gets_explained():
    model = HalfSighted("left").requires_grad_(False)
    maps, _ = gradcam(model, torch.rand(2, 3, 16, 16), "features")
    assert (region_mass(maps, LEFT) > 0.9).all()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_are_removed_and_mode_restored_even_after_an_error():
    model = HalfSighted("left").train()
    gradcam(model, torch.rand(2, 3, 16, 16), "features")
    assert hook_count(model) == 0 and model.training
    with pytest.raises(UserError, match="Grad-CAM needs a convolutional layer"):
        gradcam(model, torch.rand(2, 3, 16, 16), "head")
    assert hook_count(model) == 0 and model.training
    with pytest.raises(UserError, match="did you mean 'features'"):
        gradcam(model, torch.rand(2, 3, 16, 16), "feature")


class OnlyTokenFive(nn.Module):
    """Logits (s, -s) where s sums a 1-d embedding that is 2 for token 5 and 0 for every other token."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(8, 1, padding_idx=0)
        with torch.no_grad():
            self.embed.weight.zero_()
            self.embed.weight[5] = 2.0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        s = self.embed(ids).sum((1, 2))
        return torch.stack([s, -s], 1)


def test_token_attributions_put_everything_on_the_token_the_model_uses():
    model = OnlyTokenFive()
    ids = torch.tensor([[1, 5, 3, 0], [1, 3, 5, 5]])
    attr, logits = token_attributions(model, ids, "embed", pad_id=0)
    # class 0 is predicted; d logit_0 / d e = 1, so gradient x input = the embedding value itself
    assert torch.equal(logits.argmax(1), torch.tensor([0, 0]))
    assert torch.allclose(attr, torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]]))
    assert torch.allclose(token_mass(attr, ids == 5), torch.ones(2, dtype=torch.float64))
    assert hook_count(model) == 0


def test_token_attributions_need_a_per_token_layer():
    model = nn.Sequential(nn.Embedding(8, 4), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(UserError, match="one vector per token"):
        token_attributions(model, torch.tensor([[1, 2, 3]]), "1")


def test_region_and_token_mass_hand_values():
    maps = torch.tensor([[[1.0, 3.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    got = region_mass(maps, (0, 1, 0, 2))  # the top row
    assert got[0].item() == pytest.approx(0.5) and got[1].isnan()
    attr = torch.tensor([[1.0, -3.0, 0.0], [0.0, 0.0, 0.0]])
    got = token_mass(attr, torch.tensor([[False, True, False], [True, False, False]]))
    assert got[0].item() == pytest.approx(0.75) and got[1].isnan()
