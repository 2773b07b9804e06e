"""Counterfactual reliance of the selected models of a study's kept runs: how often the prediction on test
flips when only the attribute of an example is re-rendered (the datasets that can re-render their examples).

    python -m benchmarks.counterfactual_reliance sieve_reference --arms erm sieve

Reads `runs/benchmarks/<study>/<data>/<arm>/seed<N>/` (the driver's kept runs) and writes
`benchmarks/results/<study>_reliance.json`: mean ± std over seeds per dataset and arm.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from benchmarks.protocol import RESULTS, ROOT, write_result
from earlyreadout.metrics import mean_std
from earlyreadout.models.inference import counterfactual_reliance
from earlyreadout.train.runs import load_trained


def reliance_of(run: Path) -> float | None:
    """The selected model's counterfactual reliance on test; None where test cannot re-render its examples."""
    _, model, splits = load_trained(run)
    test = splits["test"]
    if test.counterfactual is None:
        return None
    return counterfactual_reliance(model, model, test, test.counterfactual())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--arms", nargs="+", required=True, help="arm folders to read (e.g. erm sieve)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = ROOT / "runs" / "benchmarks" / args.study
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for data in sorted(p for p in root.iterdir() if p.is_dir()):
        for arm in args.arms:
            for run in sorted((data / arm).glob("seed*")):
                if (run / "done").is_file() and (r := reliance_of(run)) is not None:
                    values[data.name][arm].append(r)
                    print(f"{data.name}/{arm}/{run.name}: {r:.3f}", flush=True)
    results = {d: {arm: mean_std(v) for arm, v in arms.items()} for d, arms in values.items()}
    write_result(RESULTS / f"{args.study}_reliance.json", f"{args.study}_reliance",
                 {"study": args.study, "arms": args.arms, "split": "test"}, results)


if __name__ == "__main__":
    main()
