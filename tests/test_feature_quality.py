"""Feature quality: DFR (val group labels) refitted on a run's selected features, beside the method's own numbers
in `compare --feature-quality`, its summary and the report."""

from __future__ import annotations

import json
import re

from earlyreadout.cli import main
from earlyreadout.report.page import write_report
from earlyreadout.report.table import FEATURES
from earlyreadout.train.feature_quality import feature_quality

TINY = ["--data", "dominoes", "--epochs", "2", "--batch-size", "16", "data.n_train=96", "data.n_val=48",
        "data.n_test=48", "data.size=8", "model.width=8", "train.progress=false"]


def test_compare_shows_dfr_on_each_trained_runs_features_and_it_equals_the_dfr_refit(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "erm,erm+dfr", "--feature-quality", "--out", str(out), *TINY]) == 0
    rows = {r["method"]: r for r in json.loads((out / "summary.json").read_text())}
    quality = rows["erm"]["feature_quality"]
    # the same DFR at its defaults on the same selected model: what `erm+dfr` reached
    assert quality["method"] == "dfr"
    assert quality["test_worst_group"] == rows["erm+dfr"]["test"]["worst_group_accuracy"]
    assert "feature_quality" not in rows["erm+dfr"]  # a refit's features are its source's
    saved = out / "erm" / "seed0" / "feature_quality.json"
    assert json.loads(saved.read_text()) == quality
    lines = (out / "summary.txt").read_text().splitlines()
    header = re.split(r"\s{2,}", lines[1])
    cells = {line.split()[0]: re.split(r"\s{2,}", line) for line in lines[3:5]}
    column = header.index(FEATURES)
    assert cells["erm"][column] == f"{quality['test_worst_group']:.3f}" and cells["erm+dfr"][column] == "-"
    page = write_report([out], tmp_path / "report.html").read_text()
    assert f"{FEATURES} (%)" in page and f"{100 * quality['test_worst_group']:.1f}" in page
    saved.write_text(json.dumps({**quality, "test_worst_group": 0.5}))
    assert feature_quality(out / "erm" / "seed0")["test_worst_group"] == 0.5  # computed once, then read

    metrics = json.loads((out / "erm" / "seed0" / "metrics.json").read_text())
    metrics["val"]["groups_by"] = "label"  # as a run whose val split has no attribute labels records it
    (out / "erm" / "seed0" / "metrics.json").write_text(json.dumps(metrics))
    saved.unlink()
    assert feature_quality(out / "erm" / "seed0") is None and not saved.exists()
