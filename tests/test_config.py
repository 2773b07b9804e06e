import pytest

from earlyreadout.config import apply_overrides, build_config, load_config
from earlyreadout.errors import ConfigError
from earlyreadout.params import RenamedSetting, apply_renames


def test_defaults_and_dataset_default_model():
    cfg = build_config({"data": "spurious-text"})
    assert cfg.method == "erm" and cfg.model == "text-transformer"
    assert cfg.train["epochs"] == 10 and cfg.data_options["correlation"] == 0.97


def test_yaml_file_and_overrides(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("method: {name: erm, lr: 0.05}\ndata: {name: dominoes}\ntrain: {epochs: 3}\nout: runs/a\n")
    cfg = load_config(f, ["train.epochs=5", "data.correlation=0.9", "method.momentum=0"])
    assert cfg.train["epochs"] == 5 and cfg.data_options["correlation"] == 0.9
    assert cfg.method_hp["lr"] == 0.05 and cfg.method_hp["momentum"] == 0.0
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
                                              ("sieve", "aux_layer", "readout_layer")])
def test_a_setting_given_by_its_earlier_name_is_accepted_with_a_warning(method, old, new):
    value = build_config({"method": {"name": method}}).method_hp[new]
    with pytest.warns(RenamedSetting, match=f"'{old}' is now called '{new}'"):
        cfg = build_config({"method": {"name": method, old: value}})
    assert cfg.method_hp[new] == value and old not in cfg.method_hp
    with pytest.warns(RenamedSetting), pytest.raises(ConfigError, match=f"give only '{new}'"):
        build_config({"method": {"name": method, old: value, new: value}})


def test_renames_map_old_names_and_leave_the_rest():
    with pytest.warns(RenamedSetting):
        given, problems = apply_renames({"a": 1, "old": 2}, {"old": "new"}, "x")
    assert given == {"a": 1, "new": 2} and problems == []
    assert apply_renames({"a": 1}, {"old": "new"}, "x") == ({"a": 1}, [])
