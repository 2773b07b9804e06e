"""`compare --methods all` against the sum of its methods' individual runs (issue #19: within 2x).

Each method of the `all` family trains alone (`earlyreadout train`, one process each), then `earlyreadout
compare --methods all` trains them all in one process and writes its table and report; both sides are timed
by the wall clock around the whole command, at the same reduced size, epochs and seed:

    python -m benchmarks.compare_all_cost                       # colored-digits, 1,000 images, 2 epochs
    python -m benchmarks.compare_all_cost --n-train 6000 --epochs 10  # the full default size (long)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.compare import expand_methods


def timed(command: list[str]) -> float:
    """Seconds of wall clock that `command` took; a failed command stops the benchmark with its output."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "CI": "true"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="colored-digits")
    p.add_argument("--n-train", type=int, default=1000, help="training examples (val and test: a fifth each)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS / "compare_all_cost.json")
    args = p.parse_args(argv)
    size = [f"data.n_train={args.n_train}", f"data.n_val={args.n_train // 5}", f"data.n_test={args.n_train // 5}"]
    shared = ["--data", args.data, "--epochs", str(args.epochs), "--seed", "0"]
    methods, skipped = expand_methods(["all"])
    cli = [sys.executable, "-m", "earlyreadout"]
    with tempfile.TemporaryDirectory() as tmp:
        alone = {m: timed([*cli, "train", "--method", m, *shared, "--out", f"{tmp}/{m}", *size]) for m in methods}
        together = timed([*cli, "compare", "--methods", "all", *shared, "--out", f"{tmp}/all", *size])
    total = sum(alone.values())
    results = {"setup": {"data": args.data, "n_train": args.n_train, "epochs": args.epochs, "methods": methods,
                         "left_out": skipped},
               "alone_s": alone, "sum_alone_s": total, "compare_all_s": together, "ratio": together / total,
               "target": "ratio <= 2"}
    write_result(args.out, "compare_all_cost", {"script": "benchmarks/compare_all_cost.py"}, results)
    print(f"compare --methods all: {together:.0f} s; its {len(methods)} methods alone: {total:.0f} s; "
          f"ratio {together / total:.2f} (target <= 2)")


if __name__ == "__main__":
    main(sys.argv[1:])
