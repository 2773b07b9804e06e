"""Cost of the sieve: time per training step of each mode and forget frequency, divided by ERM's, in one run.

Writes benchmarks/results/sieve_cost.json. Variants are timed round-robin (each round times every variant
on the same batches) and the ratio uses the median over rounds, so load from other processes on a shared
machine hits every variant alike. The aux layer is the `sieve` default; the head is the default one and a linear one; `monitor` is off (it
adds one forward to the aux layer per forget step).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from earlyreadout.config import build_config
from earlyreadout.distributed import DistInfo
from earlyreadout.train.engine import build_run

ROUNDS, STEPS = 7, 10
DATA = {"name": "dominoes", "n_train": 640, "n_val": 8, "n_test": 8}
HEADS = {"default head": {}, "linear head": {"readout_head": "linear"}}
VARIANTS = {
    "erm": {"name": "erm"},
    **{f"{mode} F={f}, {head}": {"name": "sieve", "mode": mode, "forget_every": f, "monitor": False, **h}
       for head, h in HEADS.items() for mode in ("single-pass", "three-pass") for f in (1, 5)},
}


def time_steps(method, batches: list[dict]) -> float:
    """Seconds per `update` over `batches` (the step counter runs on, so forget steps fall as in training)."""
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        method.update(batch, i)
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
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
    result = {
        "setup": {"data": DATA, "model": "small-cnn (width 32)", "batch_size": 64, "threads": 1,
                  "rounds": ROUNDS, "steps_per_round": STEPS,
                  "default head": {k: v for k, v in methods["single-pass F=5, default head"].hp.items()
                                   if k in ("readout_layer", "readout_head", "readout_depth", "readout_width")}},
        "ratio_to_erm": {name: statistics.median(t) / erm for name, t in times.items() if name != "erm"},
        "target": "single-pass F=5 <= 1.15",
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "sieve_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
