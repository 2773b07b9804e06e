"""Print a study's result as Markdown tables (one per selection rule: arms x datasets, mean ± std):

    python -m benchmarks.table baselines                          # test worst-group accuracy
    python -m benchmarks.table baselines --metric time_over_erm   # any measure the result holds
    python -m benchmarks.table readout_stack --rule leave-one-out # arms searched or picked: that rule's choice

What the docs quote is printed from the committed result, so a table in the docs can be checked by running
this again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.protocol import RESULTS


def cell(entry: dict[str, Any], metric: str, rule: str) -> str:
    """`mean ± std` of `metric` in one arm's entry (its `rule` choice where the arm chose); "" if absent."""
    value = (entry["chosen"].get(rule, {}) if "chosen" in entry else entry).get(metric)
    if not isinstance(value, dict):
        return ""
    text = f"{value['mean']:.3f} ± {value['std']:.3f}"
    return text if "chosen" not in entry else f"{text} ({entry['chosen'][rule]['name']})"


def tables(result: dict[str, Any], metric: str, rule: str) -> str:
    """One Markdown table per selection label: a row per arm (in the study's order), a column per dataset."""
    results = result["results"]
    datasets = list(results)
    labels = list(dict.fromkeys(s for d in datasets for s in results[d]))
    out = []
    for label in labels:
        arms = list(dict.fromkeys(a for d in datasets for a in results[d].get(label, {})))
        lines = [f"selected by {label}: {metric}", "", "| | " + " | ".join(datasets) + " |",
                 "|---|" + "---|" * len(datasets)]
        for arm in arms:
            cells = [cell(results[d][label][arm], metric, rule) if arm in results[d].get(label, {}) else ""
                     for d in datasets]
            if any(cells):
                lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", help="a result's name (benchmarks/results/<study>.json) or its path")
    p.add_argument("--metric", default="test_worst_group", help="the measure shown (default: %(default)s)")
    p.add_argument("--rule", default="each", help="for searched or picked arms: which rule's choice "
                   "(each, pooled, leave-one-out; default: %(default)s)")
    args = p.parse_args(argv)
    path = Path(args.study) if args.study.endswith(".json") else RESULTS / f"{args.study}.json"
    if not path.is_file():
        known = ", ".join(sorted(q.stem for q in RESULTS.glob("*.json")))
        print(f"table: no result {path} (one of: {known})", file=sys.stderr)
        raise SystemExit(2)
    sys.stdout.write(tables(json.loads(path.read_text()), args.metric, args.rule))


if __name__ == "__main__":
    main(sys.argv[1:])
