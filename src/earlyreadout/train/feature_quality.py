"""Feature quality of a finished run: DFR, with validation group labels, refitted on its selected model's
penultimate features (Kirichenko et al. 2022; Izmailov et al. 2022).

A method's own worst-group accuracy mixes how good its features are with how its last layer uses them; the
DFR refit of the same features separates the first. The scores are kept in the run's `feature_quality.json`
(a refit takes seconds, and is done once per run); the refit's own run directory is temporary.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from earlyreadout.io import write_json
from earlyreadout.metrics import GROUPS_BY
from earlyreadout.train.retrain import retrain
from earlyreadout.train.runs import RunDir

REFIT = "dfr"


def feature_quality(run: str | Path) -> dict[str, Any] | None:
    """{method, test and val worst-group / average accuracy} of DFR refitted on the selected model of finished
    run `run`, read from its `feature_quality.json` when computed before; None where the run's validation split
    has no group labels (DFR needs them), or the run is itself a last-layer refit (its features are its
    source's)."""
    source = RunDir(run)
    saved = source.read_feature_quality()
    if saved is not None:
        return saved
    metrics = source.read_metrics()
    if "last_layer" in metrics or metrics["val"].get("groups_by") != GROUPS_BY[True]:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        refit = retrain(source.path, REFIT, Path(tmp) / "refit", log=lambda _message: None)
    scores = {"method": REFIT, **{f"{split}_{name}": refit[split][f"{name}_accuracy"]
                                  for split in ("test", "val") for name in ("worst_group", "average")}}
    write_json(scores, source.feature_quality)
    return scores
