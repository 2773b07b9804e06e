"""The `gradcam` command on tiny trained runs: files per group, the mass summary, and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from tests.conftest import tiny_config

from earlyreadout.cli import main
from earlyreadout.explain.runs import region_area
from earlyreadout.train.engine import train


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("dominoes"), data="dominoes", data_options={"size": 8})
    train(cfg, log=lambda _: None)
    return cfg.out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("text"), data="spurious-text")
    train(cfg, log=lambda _: None)
    return cfg.out


def test_gradcam_writes_one_grid_per_group_and_the_core_mass(image_run, tmp_path, capsys):
    out = tmp_path / "cams"
    assert main(["gradcam", "--run", image_run, "--vs", image_run, "--n", "3", "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4
    for png in pngs:
        with Image.open(png) as im:
            assert im.width > 100 and im.height > 100
    summary = json.loads((out / "gradcam.json").read_text())
    assert summary["dataset"] == "dominoes" and len(summary["runs"]) == 2
    assert summary["region_area"] == {"core_mass": 0.5, "spurious_mass": 0.5}
    first, second = summary["runs"]
    assert first["layer"] == "block4"
    assert len(first["groups"]) == 4
    for group, stats in first["groups"].items():
        assert 0.0 <= stats["core_mass"] <= 1.0
        assert stats["core_mass"] + stats["spurious_mass"] == pytest.approx(1.0, abs=1e-6)
        assert stats == second["groups"][group]  # the same run twice gives the same answer
    assert str(out / "gradcam.json") in capsys.readouterr().out


def test_gradcam_one_group_by_index_and_another_layer(image_run, tmp_path):
    out = tmp_path / "one"
    assert main(["gradcam", "--run", image_run, "--group", "2", "--layer", "block2", "--n", "2",
                 "--out", str(out)]) == 0
    assert [p.name for p in out.glob("*.png")] == ["group0-y-5-a-red.png"]
    summary = json.loads((out / "gradcam.json").read_text())
    assert list(summary["runs"][0]["groups"]) == ["y=>=5, a=red"]
    assert summary["runs"][0]["layer"] == "block2"


@pytest.mark.parametrize("args, message", [
    (["--group", "y=<5"], "no group 'y=<5'"),
    (["--layer", "block9"], "no layer 'block9'"),
    (["--layer", "fc"], "Grad-CAM needs a convolutional layer"),
    (["--split", "dev"], "'split' parameter of gradcam must be one of 'train', 'val', 'test'; got 'dev'"),
])
def test_gradcam_bad_input_is_one_line_and_exit_2(image_run, tmp_path, capsys, args, message):
    assert main(["gradcam", "--run", image_run, "--n", "1", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_token_attributions_for_a_text_run_highlight_the_spurious_tokens(text_run, tmp_path):
    out = tmp_path / "tokens"
    assert main(["gradcam", "--run", text_run, "--n", "4", "--out", str(out)]) == 0
    pages = sorted(out.glob("*.html"))
    assert len(pages) == 4
    negation_pages = [p for p in pages if "a-negation" in p.name]
    assert negation_pages and all("outline:2px solid" in p.read_text() for p in negation_pages)
    summary = json.loads((out / "gradcam.json").read_text())
    run = summary["runs"][0]
    assert run["layer"] == "embed"
    for group, stats in run["groups"].items():
        if group.endswith("a=no negation"):
            assert stats["spurious_mass"] == 0.0
        else:
            assert 0.0 < stats["spurious_mass"] < 1.0


def test_region_area_is_the_uniform_baseline():
    assert region_area({"spurious_region": (0, 4, 0, 4)}, (28, 28)) == {"spurious_mass": pytest.approx(16 / 784)}
    assert region_area({"core_region": (16, 32, 0, 16), "spurious_region": (0, 16, 0, 16)}, (32, 16)) == {
        "core_mass": 0.5, "spurious_mass": 0.5}
    assert region_area({}, (8, 8)) == {}


def test_blank_maps_are_counted_and_explained_in_one_line_per_run():
    from earlyreadout.explain.runs import blank_notes

    runs = [{"label": "erm", "layer": "block4", "groups": {"g0": {"shown": 4, "blank": 0}, "g1": {"shown": 4, "blank": 0}}},
            {"label": "dfr", "layer": "block4", "groups": {"g0": {"shown": 4, "blank": 3}, "g1": {"shown": 2, "blank": 0}}}]
    (note,) = blank_notes(runs)
    assert note.startswith("dfr: 3 of 6 Grad-CAM maps shown are blank (g0: 3 of 4): ")
    assert "no position of layer 'block4'" in note


def test_a_class_whose_logit_ignores_the_layer_gets_blank_maps_with_a_note(image_run, tmp_path, capsys):
    import torch

    from earlyreadout.io import load_checkpoint, save_checkpoint

    run = tmp_path / "zero-row"
    shutil.copytree(image_run, run)
    best = run / "checkpoints" / "best.pt"
    state = load_checkpoint(best)
    head = [k for k in state if k.endswith("weight")][-1]  # the classifier: class 0's row set to zero, bias up
    state[head][0] = 0.0
    state[head.replace("weight", "bias")] = torch.tensor([1e3, 0.0])
    save_checkpoint(state, best)
    assert main(["gradcam", "--run", str(run), "--n", "4", "--out", str(tmp_path / "gc")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "gc" / "gradcam.json").read_text())
    (groups,) = [r["groups"] for r in summary["runs"]]
    assert all(g["blank"] == g["shown"] for g in groups.values())  # every example is predicted class 0
    assert summary["notes"] and f"note: {summary['notes'][0]}" in out
