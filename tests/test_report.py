"""The HTML report: its pieces against hand values, `compare` writing it, and a real headless browser."""

from __future__ import annotations

import json
import re

import pytest
from matplotlib.figure import Figure
from PIL import Image
from tests import chromium
from tests.conftest import tiny_config

from earlyreadout.cli import main
from earlyreadout.errors import UserError
from earlyreadout.explain.figures import png_bytes
from earlyreadout.report.html_table import best_cells, cell
from earlyreadout.report.page import find_runs, group_runs, setting_key, write_report
from earlyreadout.train.engine import train

TINY_COMPARE = ["--data", "dominoes", "--epochs", "2", "--batch-size", "16", "data.n_train=96", "data.n_val=48",
                "data.n_test=48", "data.size=8", "model.width=8", "train.progress=false"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`compare` of two methods and the ceiling x two seeds; one run also holds a readout diagnosis."""
    out = tmp_path_factory.mktemp("compare")
    assert main(["compare", "--methods", "erm,groupdro,ceiling", "--seeds", "2", "--out", str(out), *TINY_COMPARE]) == 0
    diagnosed = out / "erm" / "seed0"
    (diagnosed / "diagnosis.json").write_text(json.dumps({
        "minority_groups": ["y=<5, a=green"],
        "layers": {"block1": {"splits": {"train": {"average_accuracy": 0.9}},
                              "flagging": {"auc": 0.8125, "average_precision": 0.5}}}}))
    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1], [1, 0])
    (diagnosed / "diagnosis_scores.png").write_bytes(png_bytes(fig))
    return out


def test_cells_and_best_cells_hand_values():
    assert cell([0.5, None, 0.7]) == ("60.0 ± 14.1", pytest.approx(0.6))
    assert cell([0.25]) == ("25.0", 0.25)
    assert cell([None]) == ("–", None)
    rows = [[("a", None), ("1", 0.9), ("x", 0.2)], [("b", None), ("2", 0.7), ("y", 0.1)]]
    assert best_cells(rows, [None, "max", "min"]) == {(0, 1), (1, 2)}
    assert best_cells(rows, [], across_rows=True) == {(0, 1), (1, 1)}
    tied = [[("a", None), ("1", 0.5)], [("b", None), ("1", 0.5)]]
    assert best_cells(tied, [None, "max"]) == set()


def test_seeds_of_one_setting_are_grouped_and_other_settings_are_not(compared):
    runs = find_runs([compared])
    assert len(runs) == 6
    settings = group_runs(runs)
    assert list(settings) == ["ceiling", "erm", "groupdro"]  # find_runs lists folders in name order
    assert [len(rs) for rs in settings.values()] == [2, 2, 2]
    other_lr = dict(runs[0].config, method={**runs[0].config["method"], "lr": 0.5})
    assert setting_key(runs[0].config) == setting_key(runs[1].config) != setting_key(other_lr)


def test_the_ceiling_is_erm_on_group_balanced_train_in_table_and_report(compared):
    config = find_runs([compared / "ceiling"])[0].config
    assert config["method"]["name"] == "erm" and config["data"]["correlation"] == 0.5
    rows = [line.split()[0] for line in (compared / "summary.txt").read_text().splitlines()[3:]]
    assert rows == ["erm", "groupdro", "ceiling"]
    assert ">ceiling<" in (compared / "report.html").read_text()


def test_the_ceiling_needs_a_generated_benchmark(tmp_path, capsys):
    assert main(["compare", "--methods", "erm,ceiling", "--data", "waterbirds", "data.root=" + str(tmp_path),
                 "--out", str(tmp_path / "c")]) == 2
    assert "needs a generated benchmark" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_compare_ends_by_writing_the_report(compared):
    page = (compared / "report.html").read_text()
    assert "<table" in page and "groupdro" in page
    assert re.search(r"\d+\.\d ± \d+\.\d", page)  # two seeds per method -> mean ± std cells
    assert page.count("data:image/png;base64,") >= 6  # 2 curves + 4 Grad-CAM groups
    assert "Grad-CAM mass on the core region" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_report_bad_paths_are_user_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="not a run directory"):
        find_runs([tmp_path / "missing"])
    with pytest.raises(UserError, match="no run directories"):
        find_runs([tmp_path])
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_text_runs_show_token_attributions_with_the_spurious_tokens_marked(tmp_path):
    cfg = tiny_config(tmp_path, data="spurious-text")
    train(cfg, log=lambda _: None)
    page = write_report([cfg.out], tmp_path / "text.html").read_text()
    assert "share of |gradient x input| on the spurious region" in page
    assert "outline:2px solid" in page


@pytest.mark.skipif(chromium.executable() is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_report_renders_in_a_headless_browser(compared, tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", str(compared), "--out", str(page), "--n", "4", "--title", "tiny comparison"]) == 0
    shot = tmp_path / "report.png"
    seen = chromium.inspect_page(page.resolve().as_uri(), shot)
    assert seen["errors"] == []
    assert seen["title"] == "tiny comparison"
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"])
    assert all(link.startswith("data:") for link in seen["links"])
    alts = [im["alt"] for im in seen["images"]]
    # per setting (erm, groupdro, ceiling) its curves and its measures, Grad-CAM per group, the diagnosis
    assert len(alts) == 3 + 3 + 4 + 1, alts
    assert sum("counterfactual_reliance: share of val predictions" in a for a in alts) == 3
    assert any("diagnosis" in a for a in alts)
    for im in seen["images"]:
        assert min(im["natural"]) > 0 and min(im["box"]) > 0, im
    assert len(seen["tables"]) >= 4  # headline, per group, core / spurious mass, diagnosis
    for table in seen["tables"]:
        assert table["rows"] >= 2 and min(table["box"]) > 0, table
    with Image.open(shot) as im:
        assert im.width >= 1000 and im.height > 1500


def test_table_summary_and_report_say_which_labels_each_method_read_and_its_time_vs_erm(compared):
    lines = (compared / "summary.txt").read_text().splitlines()
    assert re.split(r"\s{2,}", lines[1])[-2:] == ["labels", "time vs ERM"]
    rows = {line.split()[0]: re.split(r"\s{2,}", line) for line in lines[3:]}
    assert rows["erm"][-2:] == ["none (val groups for selection)", "1.00x"]  # selected by val worst-group
    assert rows["groupdro"][-2] == "train groups (val groups for selection)"
    summary = json.loads((compared / "summary.json").read_text())
    assert {r["method"]: r["labels_used"] for r in summary} == {"erm": "none", "groupdro": "train", "ceiling": "none"}
    erm = [r["train_time_s"] for r in summary if r["method"] == "erm"]
    groupdro = [r for r in summary if r["method"] == "groupdro"]
    assert groupdro[0]["time_vs_erm"] == pytest.approx(sum(r["train_time_s"] for r in groupdro) / sum(erm))
    page = (compared / "report.html").read_text()
    headline = page[page.index("<table"):page.index("</table>")]
    assert "<th>labels</th><th>time vs ERM</th>" in headline
    assert headline.index(">ceiling<") < headline.index(">groupdro<")  # label-free methods first, then train's


def test_curve_plots_have_whole_epoch_ticks_and_the_legend_off_the_data():
    import numpy as np

    from earlyreadout.report.plots import lines_figure

    epochs = np.array([1, 2, 3])
    curves = {"g0": np.array([[0.1, 0.5, 0.9]]), "g1": np.array([[0.9, 0.95, 0.99]])}  # lines reach every corner
    fig = lines_figure("erm", epochs, curves, 1, "val accuracy", worst=True)
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes_box.x1  # to the right of the plotting area, covering no line
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["g0", "g1", "worst group"]


def test_the_diagnosis_section_shows_the_verdict_and_the_label_free_evidence():
    from earlyreadout.report.page import _diagnosis_table

    summary = {"minority_groups": [], "verdict": {"line": "shortcut likely: the block1 readout is wrong on 3 <x>"},
               "layers": {"block1": {"splits": {"train": {"average_accuracy": 0.97}},
                                     "evidence": {"error_share": 0.03, "confidence_ratio": 0.987}}}}
    page = _diagnosis_table(summary)
    assert "<b>Verdict</b>: shortcut likely: the block1 readout is wrong on 3 &lt;x&gt;" in page
    assert "<td>3.0</td>" in page and "<td>0.99</td>" in page
