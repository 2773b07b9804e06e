"""Readout heads and EarlyReadout: head families, pooling, hooks, detached features, real architectures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.readout.heads import EarlyReadout, ReadoutHead, ResidualConvBlock, pool


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def hook_count(model: nn.Module) -> int:
    """Forward hooks on the model (transformers installs some of its own)."""
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return SmallCNN(3, 2, width=4)


X = torch.randn(4, 3, 16, 16)
Y = torch.tensor([0, 1, 1, 0])


# --- pooling ---------------------------------------------------------------------------------------------
def test_pool_of_feature_maps_is_the_spatial_mean():
    f = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).reshape(2, 3, 2, 2)
    assert pool(f).tolist() == [[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]]


def test_pool_of_token_sequences_is_cls_or_mean():
    f = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]])  # (N=1, L=3, D=2)
    assert pool(f, "cls").tolist() == [[1.0, 2.0]]
    assert pool(f, "mean").tolist() == [[3.0, 6.0]]
    v = torch.randn(2, 5)
    assert pool(v) is v


def test_pool_rejects_unknown_modes_and_shapes():
    with pytest.raises(UserError, match="cls, mean"):
        pool(torch.randn(1, 2, 3), "max")
    with pytest.raises(ValueError, match="cannot pool"):
        pool(torch.randn(1, 2, 3, 4, 5))


# --- head families ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["linear", "mlp", "conv"])
def test_every_family_reads_feature_maps(family):
    head = ReadoutHead(family, (6, 5, 5), n_classes=3, depth=2, width=7)
    f = torch.randn(4, 6, 5, 5)
    out = head(f)
    assert out.shape == (4, 3)
    assert torch.allclose(head.decode(head.reduce(f)), out)
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize("family", ["linear", "mlp"])
@pytest.mark.parametrize("token_pool", ["cls", "mean"])
def test_linear_and_mlp_read_token_sequences(family, token_pool):
    head = ReadoutHead(family, (9, 6), n_classes=2, width=5, token_pool=token_pool)
    f = torch.randn(3, 9, 6)
    assert head(f).shape == (3, 2)
    assert torch.allclose(head(f), head.decode(pool(f, token_pool)))


def test_linear_head_is_pool_then_one_linear_layer():
    head = ReadoutHead("linear", (6, 5, 5), n_classes=3)
    f = torch.randn(2, 6, 5, 5)
    assert torch.allclose(head(f), F.linear(f.mean((2, 3)), head.out.weight, head.out.bias))


def test_mlp_hidden_width():
    head = ReadoutHead("mlp", (6,), n_classes=2, width=11)
    assert [m.out_features for m in head.out if isinstance(m, nn.Linear)] == [11, 2]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_conv_head_depth_and_width(depth):
    head = ReadoutHead("conv", (6, 5, 5), n_classes=2, depth=depth, width=7)
    blocks = list(head.body)
    assert len(blocks) == depth
    assert all(isinstance(b, ResidualConvBlock) and b.conv.out_channels == 7 for b in blocks)
    assert [b.skip for b in blocks] == [False, True, True][:depth]  # only the first block changes the width
    assert head.out.in_features == (7 if depth else 6)
    assert head(torch.randn(2, 6, 5, 5)).shape == (2, 2)


def test_conv_head_on_tokens_and_unknown_family_are_user_errors():
    with pytest.raises(UserError, match="use head 'linear' or 'mlp'"):
        ReadoutHead("conv", (9, 6), n_classes=2)
    with pytest.raises(UserError, match="linear, mlp, conv"):
        ReadoutHead("attention", (6,), n_classes=2)
    with pytest.raises(UserError, match="cls, mean"):
        ReadoutHead("linear", (9, 6), n_classes=2, token_pool="max")


def test_reset_parameters_gives_a_fresh_head():
    head = ReadoutHead("conv", (6, 5, 5), n_classes=2, depth=1, width=4)
    before = [p.clone() for p in head.parameters()]
    with torch.no_grad():
        for p in head.parameters():
            p.add_(1.0)
    head.reset_parameters()
    assert not any(torch.equal(a, b + 1.0) for a, b in zip(before, head.parameters()) if a.numel() > 1)


# --- EarlyReadout on a model -----------------------------------------------------------------------------
def test_shapes_are_inferred_and_hooks_do_not_change_the_output(cnn):
    direct = cnn(X)
    with EarlyReadout(cnn, ["block1", "block3"], n_classes=2, example_input=X[:2], head="conv", width=5) as ro:
        assert ro.head("block1").body[0].conv.in_channels == 4
        assert ro.head("block3").body[0].conv.in_channels == 16
        assert torch.equal(cnn(X), direct)
        logits = ro.logits()
        assert set(logits) == {"block1", "block3"} and all(z.shape == (4, 2) for z in logits.values())
        assert torch.equal(ro.features()["block1"], cnn.block1(X))
    assert no_hooks_left(cnn)


def test_several_readouts_on_several_layers_at_once(cnn):
    a = EarlyReadout(cnn, ["block1", "block2"], 2, X[:2])
    b = EarlyReadout(cnn, "block4", 2, X[:2], head="mlp")
    c = EarlyReadout(cnn, ["block1"], 2, X[:2], head="conv", depth=1, width=3)
    cnn(X)
    outs = {**{("a", k): v for k, v in a.logits().items()}, ("b", "block4"): b.logits()["block4"],
            ("c", "block1"): c.logits()["block1"]}
    assert len(outs) == 4 and all(z.shape == (4, 2) for z in outs.values())
    assert torch.equal(a.features()["block1"], c.features()["block1"])
    for ro in (a, b, c):
        ro.close()
    assert no_hooks_left(cnn)


def test_forward_runs_the_model_and_returns_logits(cnn):
    with EarlyReadout(cnn, ["block2", "block2"], 3, X[:2]) as ro:
        assert ro.layers == ["block2"]
        z = ro(X)["block2"]
        assert torch.allclose(z, ro.head("block2")(cnn.block2(cnn.block1(X))))


def test_logits_before_any_forward_is_an_error(cnn):
    with EarlyReadout(cnn, "block1", 2, X[:2]) as ro, pytest.raises(RuntimeError, match="run the model forward"):
        ro.logits()


def test_unknown_layer_lists_close_matches_and_leaves_no_hook(cnn):
    with pytest.raises(UserError, match="did you mean 'block2'"):
        EarlyReadout(cnn, ["block1", "blok2"], 2, X[:2])
    assert no_hooks_left(cnn)
    with pytest.raises(UserError, match="at least one layer"):
        EarlyReadout(cnn, [], 2, X[:2])


def test_a_layer_the_forward_never_runs_is_a_user_error():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            return self.used(x)

    model = Skips()
    with pytest.raises(UserError, match="unused .* did not run"):
        EarlyReadout(model, ["used", "unused"], 2, torch.randn(2, 4))
    assert no_hooks_left(model)


def test_dry_forward_keeps_the_model_mode_and_batch_statistics(cnn):
    cnn.train()
    stats = cnn.block1[1].running_mean.clone()
    with EarlyReadout(cnn, "block1", 2, X[:2]):
        assert cnn.training
    assert torch.equal(cnn.block1[1].running_mean, stats)


def test_training_the_head_never_changes_the_model(cnn):
    """The model's parameters and their gradients are identical with and without the head's loss."""
    def step(with_readout: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        torch.manual_seed(1)
        model = SmallCNN(3, 2, width=4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ro = EarlyReadout(model, ["block1", "block3"], 2, X[:2], head="conv", width=4)
        head_opt = torch.optim.SGD(ro.parameters(), lr=0.1)
        heads_before = [p.clone() for p in ro.parameters()]
        loss = F.cross_entropy(model(X), Y)
        if with_readout:
            loss = loss + 10.0 * ro.loss(Y)
        opt.zero_grad()
        head_opt.zero_grad()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        head_opt.step()
        if with_readout:
            assert any(not torch.equal(a, b) for a, b in zip(heads_before, ro.parameters()))
        ro.close()
        return [p.detach().clone() for p in model.parameters()], grads

    params_a, grads_a = step(False)
    params_b, grads_b = step(True)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))


def test_the_model_is_not_a_submodule_of_the_readout(cnn):
    with EarlyReadout(cnn, "block2", 2, X[:2]) as ro:
        names = [n for n, _ in ro.named_parameters()]
    assert names and all(n.startswith("heads.") for n in names)


def test_undetached_features_carry_gradients_to_the_model(cnn):
    with EarlyReadout(cnn, "block2", 2, X[:2]) as ro:
        cnn(X)
        F.cross_entropy(ro.logits(detach=False)["block2"], Y).backward()
    assert cnn.block1[0].weight.grad is not None and cnn.block4[0].weight.grad is None


# --- real architectures ----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_torchvision_resnets_layer1_to_layer4(arch):
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=2).eval()
    x = torch.randn(2, 3, 32, 32)
    layers = ["layer1", "layer2", "layer3", "layer4"]
    with EarlyReadout(model, layers, 2, x, head="linear") as ro:
        z = ro(x)
        direct = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
        assert torch.allclose(ro.features()["layer1"], direct)
    expansion = 4 if arch == "resnet50" else 1
    assert [ro.head(p).out.in_features for p in layers] == [64 * expansion * 2**i for i in range(4)]
    assert all(v.shape == (2, 2) for v in z.values())
    assert no_hooks_left(model)


def tiny_bert(kind: str) -> tuple[nn.Module, str]:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=16)
        return transformers.BertModel(config).eval(), "encoder.layer.1"
    config = transformers.DistilBertConfig(vocab_size=40, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                                           max_position_embeddings=16)
    return transformers.DistilBertModel(config).eval(), "transformer.layer.1"


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_hugging_face_encoders_by_path(kind):
    model, layer = tiny_bert(kind)
    ids = torch.randint(1, 40, (3, 7))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    hidden = model(**inputs, output_hidden_states=True).hidden_states[2]  # the output of layer 1
    own_hooks = hook_count(model)
    with EarlyReadout(model, layer, 2, inputs, head="mlp", width=8, token_pool="mean") as ro:
        z = ro(inputs)[layer]
        assert torch.allclose(ro.features()[layer], hidden, atol=1e-6)
        assert torch.allclose(z, ro.head(layer)(hidden), atol=1e-6)
        ro(ids)  # a plain tensor of token ids works as well
        F.cross_entropy(ro.logits()[layer], torch.tensor([0, 1, 1])).backward()
    assert all(p.grad is None for p in model.parameters())
    assert ro.head(layer).out[0].in_features == 16
    assert hook_count(model) == own_hooks


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_hugging_face_unknown_layer_suggests_the_real_path(kind):
    model, layer = tiny_bert(kind)
    wrong = layer.replace("layer.1", "layers.1")
    with pytest.raises(UserError, match=f"did you mean '{layer}'"):
        EarlyReadout(model, wrong, 2, torch.randint(1, 40, (2, 5)))
