import pytest

from earlyreadout.config import apply_overrides, build_config, load_config
from earlyreadout.errors import ConfigError
from earlyreadout.params import Param, resolve


def test_defaults_and_dataset_default_model():
    cfg = build_config({"data": "spurious-text"})
    assert cfg.method.name == "erm" and cfg.model.name == "text-transformer"
    assert cfg.train.epochs == 10 and cfg.data.settings["correlation"] == 0.97


def test_yaml_file_and_overrides(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("method: {name: erm, lr: 0.05}\ndata: {name: dominoes}\ntrain: {epochs: 3}\nout: runs/a\n")
    cfg = load_config(f, ["train.epochs=5", "data.correlation=0.9", "method.momentum=0"])
    assert cfg.train.epochs == 5 and cfg.data.settings["correlation"] == 0.9
    assert cfg.method.settings["lr"] == 0.05 and cfg.method.settings["momentum"] == 0.0
    assert cfg.to_dict()["data"]["name"] == "dominoes"


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as e:
        build_config({"method": {"name": "erm", "lrr": 1}, "data": {"name": "dominoes", "correlation": 1.5},
                      "train": {"batch_size": 0}, "trian": {}})
    text = str(e.value)
    assert len(e.value.problems) == 4
    assert "did you mean 'lr'" in text and "'correlation' parameter" in text and "got 1.5" in text
    assert "'batch_size' parameter of train must be an int in the range [1, inf); got 0" in text
    assert "unknown config section 'trian'" in text


def test_unknown_names_suggest():
    with pytest.raises(ConfigError, match="unknown dataset 'domino'.*did you mean 'dominoes'"):
        build_config({"data": "domino"})


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.epochs"])


@pytest.mark.parametrize("method, old, new", [("jtt", "T", "erm_epochs"), ("sieve", "aux_lr", "readout_lr"),
                                              ("sieve", "aux_layer", "readout_layer"), ("dedier", "head", "readout_head")])
def test_a_setting_given_by_its_retired_name_is_refused_with_its_current_name(method, old, new):
    value = build_config({"method": {"name": method}}).method.settings[new]
    with pytest.raises(ConfigError, match=f"'{old}' was renamed to '{new}'; use {new}"):
        build_config({"method": {"name": method, old: value}})


def test_a_retired_name_the_owner_never_had_is_an_unknown_setting():
    problems = resolve({"lr": Param(0.1, "a rate")}, {"T": 1, "aux_lr": 0.1}, "x")[1]
    assert len(problems) == 2 and all(p.startswith("unknown parameter") for p in problems)
    assert resolve({"lr": Param(0.1, "a rate")}, {"lr": 0.2}, "x") == ({"lr": 0.2}, [])
