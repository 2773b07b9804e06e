"""Train several methods (and seeds) on one dataset with one shared config; one results table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earlyreadout.config import build_config, raw_config, set_values
from earlyreadout.data import DATASETS
from earlyreadout.errors import UserError
from earlyreadout.io import write_json
from earlyreadout.report.page import write_report
from earlyreadout.report.table import table
from earlyreadout.train.engine import train
from earlyreadout.train.runs import RunDir

CEILING = "ceiling"


def compare(methods: list[str], out: str | Path, config: str | None = None, overrides: list[str] | None = None,
            seeds: int = 1, first_seed: int = 0, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run each method x seed into `<out>/<method>/seed<k>`; finished runs are reused, not retrained.

    `config`, typed `values` (flags) and `overrides` (key=value, which win) are shared by every run. The
    pseudo-method `ceiling` is ERM on group-balanced train (`data.correlation=1/n_classes`, generated benchmarks
    only): the best a method can hope for on that benchmark, shown beside the others.
    """
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {seeds}")
    raw = raw_config(config, overrides, values)
    out = Path(out)
    # validate every method's config before training anything
    configs = {}
    for m in methods:
        for s in range(seeds):
            seed = first_seed + s
            run = {"train.seed": seed, "out": str(out / m / f"seed{seed}"), "method.name": "erm" if m == CEILING else m}
            if m == CEILING:
                base = build_config(set_values(raw, run))
                if "correlation" not in DATASETS.get(base.data).options:
                    raise UserError(f"the {CEILING} (ERM on group-balanced train) needs a generated benchmark with a "
                                    f"correlation option; {base.data!r} has none: drop it from --methods")
                # one attribute per class: agreement 1/n_classes leaves every (label, attribute) group equally likely
                run["data.correlation"] = 1.0 / base.data_options.get("n_classes", 2)
            configs[m, seed] = build_config(set_values(raw, run))
    results = []
    for (m, seed), cfg in configs.items():
        print(f"== {m} seed {seed} -> {cfg.out}")
        results.append({**RunDir(cfg.out).train_or_reuse(cfg, train), "method": m})
    text = table(results)
    print()
    print(text)
    write_json(results, out / "summary.json")
    (out / "summary.txt").write_text(text + "\n")
    report = write_report([cfg.out for cfg in configs.values()], out / "report.html")
    print(f"report written to {report}")
    return results
