"""Stages found on built models: declared lists, timm's feature_info, torchvision's stage names, any module's
children; models by torchvision name and from the user's own code."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from earlyreadout.config import load_config
from earlyreadout.errors import ConfigError, UserError
from earlyreadout.models import build_model
from earlyreadout.models.factory import call_factory, load_factory, split_factory
from earlyreadout.models.layers import find_module
from earlyreadout.models.stages import ModelLayers, model_stages
from earlyreadout.models.weights import fitted_keys, mismatch

IMAGE = {"modality": "image", "shape": (3, 32, 32)}


@pytest.mark.parametrize(("arch", "stages"), [
    ("resnet18", ["layer1", "layer2", "layer3", "layer4"]),
    ("convnext_tiny", ["features.1", "features.3", "features.5", "features.7"]),
    ("efficientnet_b0", [f"features.{i}" for i in range(1, 8)]),
    ("regnet_y_400mf", [f"trunk_output.block{i}" for i in range(1, 5)]),
    ("densenet121", [f"features.denseblock{i}" for i in range(1, 5)]),
])
def test_torchvision_models_by_name_have_their_standard_stages(arch, stages):
    cfg = load_config(None, [f"model={arch}"])
    assert (cfg.model.name, cfg.model.settings["arch"]) == ("torchvision", arch)
    model = build_model(cfg.model.name, cfg.model.settings, IMAGE, 3)
    assert model_stages(model) == stages
    for stage in stages:
        find_module(model, stage)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_vit_stages_are_its_encoder_layers():
    model = torchvision.models.vit_b_16(num_classes=2)
    assert model_stages(model) == [f"encoder.layers.encoder_layer_{i}" for i in range(12)]


class TimmLike(nn.Module):
    """What timm models carry: `feature_info` as dicts naming modules."""

    def __init__(self):
        super().__init__()
        self.stem, self.stages, self.head = nn.Conv2d(3, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)), \
            nn.Linear(4, 2)
        self.feature_info = [{"num_chs": 4, "reduction": 1, "module": "stem"},
                             {"num_chs": 4, "reduction": 2, "module": "stages.0"},
                             {"num_chs": 4, "reduction": 4, "module": "stages.1"}]


def test_timm_feature_info_names_the_stages_and_a_declared_list_wins():
    model = TimmLike()
    assert model_stages(model) == ["stem", "stages.0", "stages.1"]  # `stages` the Sequential is not a list
    assert model_stages(model, ["stem"]) == ["stem"]
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    assert model_stages(plain) == ["0", "2"]  # children with parameters, but the classifier
    plain.stages = ["2"]
    assert model_stages(plain) == ["2"]


def test_factory_specs_and_their_errors(tmp_path):
    (tmp_path / "helpers.py").write_text("WIDTH = 3\n")
    (tmp_path / "nets.py").write_text(
        "from torch import nn\nimport helpers\n\n"
        "class Net(nn.Module):\n    def __init__(self, num_classes, width=helpers.WIDTH):\n"
        "        super().__init__()\n        self.fc = nn.Linear(width, num_classes)\n"
        "    def forward(self, x):\n        return self.fc(x)\n\n"
        "def broken():\n    raise RuntimeError('no GPU here')\n\nNOT_CALLABLE = 3\n")
    spec = f"{tmp_path / 'nets.py'}:Net"
    net = call_factory(load_factory(spec), spec, 5, {})
    assert net.fc.out_features == 5 and net.fc.in_features == 3  # num_classes given; its neighbour imported
    assert call_factory(load_factory(spec), spec, 5, {"width": 7}).fc.in_features == 7
    assert isinstance(call_factory(load_factory("torch.nn:Identity"), "torch.nn:Identity", 2, {}), nn.Identity)
    for bad, message in ((f"{tmp_path}/nets.py:broken", "raised RuntimeError: no GPU here"),
                         (f"{tmp_path}/nets.py:NOT_CALLABLE", "not a class or function"),
                         (f"{tmp_path}/nets.py:Nte", "did you mean 'Net'"),
                         (f"{tmp_path}/missing.py:Net", "does not exist"),
                         ("no_such_package.mod:Net", "cannot import module 'no_such_package.mod'")):
        with pytest.raises(UserError, match=message):
            call_factory(load_factory(bad), bad, 2, {})
    with pytest.raises(UserError, match="not of the form FILE.py:CALLABLE"):
        split_factory("nets.py:")
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, ["model=nets.py:1x"])


def test_checkpoint_keys_lose_wrapper_prefixes_and_a_mismatch_names_keys():
    own = nn.Linear(2, 3).state_dict()
    wrapped = {f"module.model.{k}": v for k, v in own.items()}
    assert set(fitted_keys(own, wrapped)) == set(own)
    wrong = {"weight": torch.zeros(4, 2), "extra": torch.zeros(1)}
    assert mismatch(own, wrong) == "missing: bias (1); unexpected: extra (1); wrong shape: weight (4, 2) vs (3, 2) (1)"


def test_model_layers_resolve_stages_and_paths_once_for_every_reader():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    layers = ModelLayers.of(net)
    assert layers.stages == ("0", "2") and layers.model == "Sequential"
    assert layers.resolve("stage:2") == "2" and layers.resolve("1") == "1"
    with pytest.raises(UserError, match=r"readout_layer='stage:3': use stage:1 .. stage:2 \(0, 2\)"):
        layers.resolve("stage:3", "readout_layer")
    with pytest.raises(UserError, match="no layer '7' in Sequential"):
        layers.resolve("7")
    assert ModelLayers.from_dict(layers.to_dict()) == layers  # what layers.json holds reads back the same
    before_build = ModelLayers.declared("small-cnn", ["block1", "block2"])
    assert before_build.problem("blok1") is None  # module paths wait for the built model
    assert "use stage:1 .. stage:2" in before_build.problem("stage:5")
    assert ModelLayers.declared("hf", []).problem("stage:5") is None  # stages named only once built
    with pytest.raises(UserError, match="does not declare"):
        ModelLayers("Net", ("", "fc"), (), ()).resolve("stage:1")

