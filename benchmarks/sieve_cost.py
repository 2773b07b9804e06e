"""Cost of the sieve: time per training step of each setting, divided by ERM's, in one run.

Writes benchmarks/results/sieve_cost.json. Variants are timed round-robin (each round times every variant
on the same batches) and the ratio uses the median over rounds, so load from other processes on a shared
machine hits every variant alike. `defaults` is the `sieve` method as shipped (three-pass, a 2-block conv head
32 wide after block1, one head step per batch, a forget step every 5 steps, `monitor` on); the other
variants change one or two settings of it (`monitor` adds one forward to the readout layer per forget step).

To compare with an earlier version of the code, time it with this same script and keep its ratios beside
the new ones (each ratio is to the ERM timed in the same run):

    PYTHONPATH=<earlier checkout>/src python -m benchmarks.sieve_cost --out /tmp/before.json
    python -m benchmarks.sieve_cost --before /tmp/before.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.distributed import DistInfo
from earlyreadout.train.engine import build_run

ROUNDS, STEPS = 7, 10
DATA = {"name": "colored-digits", "n_train": 640, "n_val": 8, "n_test": 8}
QUIET = {"name": "sieve", "monitor": False}
PREVIOUS = {"readout_layer": "stage:2", "readout_head": "linear", "readout_width": 64, "forget_every": 1,
            "forget_lr": 0.0033, "readout_lr": 0.0026, "readout_weight_decay": 0.0, "forget_weight": 0.65,
            "readout_steps": 3, "reinit_every": 20}
VARIANTS = {
    "erm": {"name": "erm"},
    "defaults": {"name": "sieve"},
    "defaults, monitor off": QUIET,
    "defaults with a 64-wide head": {"name": "sieve", "readout_width": 64},
    "forget every 2 (the leave-one-out choice on 10-class colored digits)": {"name": "sieve", "forget_every": 2},
    "previous defaults (linear head after block2, forget every step, 3 head steps, fresh head every 20)":
        {"name": "sieve", **PREVIOUS},
    "single-pass F=5": {**QUIET, "mode": "single-pass"},
}
OUT = RESULTS / "sieve_cost.json"


def time_steps(method, batches: list[dict]) -> float:
    """Seconds per `update` over `batches` (the step counter runs on, so forget steps fall as in training)."""
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        method.update(batch, i)
    return (time.perf_counter() - start) / len(batches)


def measure() -> dict:
    torch.set_num_threads(1)
    methods, batches = {}, None
    for name, method_cfg in VARIANTS.items():
        cfg = build_config({"method": method_cfg, "data": DATA, "train": {"batch_size": 64, "device": "cpu"},
                            "out": "unused"})
        method, _, loader = build_run(cfg, torch.device("cpu"), DistInfo())
        method.train()
        methods[name] = method
        if batches is None:
            loader.set_epoch(0)
            batches = list(loader)[:STEPS]
    for method in methods.values():  # warm-up
        time_steps(method, batches[:2])
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(ROUNDS):
        for name, method in methods.items():
            times[name].append(time_steps(method, batches))
    erm = statistics.median(times["erm"])
    defaults = {k: v for k, v in methods["defaults"].hp.items()
                if k.startswith(("readout_", "forget_")) or k in ("mode", "reinit_every", "monitor")}
    return {
        "setup": {"data": DATA, "model": "small-cnn (width 32)", "batch_size": 64,
                  "threads": 1, "rounds": ROUNDS, "steps_per_round": STEPS, "erm_step_s": erm,
                  "variants": {k: v for k, v in VARIANTS.items() if k != "erm"}, "defaults": defaults},
        "ratio_to_erm": {name: statistics.median(t) / erm for name, t in times.items() if name != "erm"},
        "target": "defaults <= 2.0",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="result file (default: %(default)s)")
    parser.add_argument("--before", type=Path, help="a result of this script on earlier code, kept under 'before'")
    args = parser.parse_args()
    result = measure()
    if args.before:
        earlier = json.loads(args.before.read_text())
        result["before"] = {"code": earlier["made_by"]["commit"], "erm_step_s": earlier["results"]["setup"]["erm_step_s"],
                            "ratio_to_erm": earlier["results"]["ratio_to_erm"]}
    print(json.dumps(result, indent=2))
    write_result(args.out, "sieve_cost", {"rounds": ROUNDS, "steps": STEPS, "data": DATA, "variants": VARIANTS}, result)


if __name__ == "__main__":
    main()
