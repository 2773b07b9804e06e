"""Train several methods (and seeds) on one dataset with one shared config; one results table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from earlyreadout.checkpoint import write_json
from earlyreadout.config import load_config
from earlyreadout.engine import RunDir, train
from earlyreadout.report import write_report
from earlyreadout.report_table import table


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run each method x seed into `<out>/<method>/seed<k>`; finished runs are reused, not retrained."""
    from earlyreadout.cli import overrides_from

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    base = overrides_from(args)
    out = Path(args.out)
    # validate every method's config before training anything
    configs = {}
    for m in methods:
        for s in range(args.seeds):
            seed = (args.seed or 0) + s
            extra = [f"method.name={m}", f"train.seed={seed}", f"out={out / m / f'seed{seed}'}"]
            configs[m, seed] = load_config(args.config, [o for o in base if not o.startswith("method.name=")] + extra)
    results = []
    for (m, seed), cfg in configs.items():
        run = RunDir(cfg.out)
        if run.done.exists():
            print(f"== {m} seed {seed}: already done, reading {run.metrics}")
            results.append(json.loads(run.metrics.read_text()))
            continue
        print(f"== {m} seed {seed} -> {cfg.out}")
        results.append(train(cfg, resume=run.last.exists()))
    text = table(results)
    print()
    print(text)
    write_json(results, out / "summary.json")
    (out / "summary.txt").write_text(text + "\n")
    report = write_report([cfg.out for cfg in configs.values()], out / "report.html")
    print(f"report written to {report}")
    return results
