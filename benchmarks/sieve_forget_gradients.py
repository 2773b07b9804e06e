"""Do the sieve's repeated forget steps of one event move the early layers as one step of their summed size?

Trains the sieve with three forget steps per event at `forget_lr` 0.0011 (the settings the search chose) at
full default size, and every `EVERY` steps, on that step's batch, takes the event's three plain-SGD forget
steps from a copy of the weights and compares them with one step of three times the size from the same
weights: the cosine and norm ratio of the later steps' gradients to the first's, and the distance between
the two moves relative to the three steps' move. Writes benchmarks/results/sieve_forget_gradients.json.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.distributed import DistInfo
from earlyreadout.readout.sieve import FeatureSieve
from earlyreadout.train.engine import build_run

DATA = ("colored-digits", "dominoes")
SETTINGS = {"forget_steps": 3, "forget_lr": 0.0011, "monitor": False, "probe": False}
EPOCHS, EVERY, SEED = 10, 50, 4
OUT = RESULTS / "sieve_forget_gradients.json"
WORST = {"cosine_to_first": min, "norm_to_first_min": min, "norm_to_first_max": max, "move_difference": max}


def flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def compare_moves(sieve: FeatureSieve, network: torch.nn.Module, x: torch.Tensor, steps: int) -> dict[str, float]:
    """`steps` forget steps against one of `steps` times the size, both from the current weights, which (and
    the batch-norm statistics the forwards update) are restored afterwards."""
    saved = copy.deepcopy(network.state_dict())
    start = flat([p.detach() for p in sieve.early]).clone()
    lr = sieve.settings["forget_lr"]
    grads = []
    for _ in range(steps):
        g = flat(list(sieve.forget_gradients(x)[0]))  # every early parameter feeds the readout layer
        grads.append(g)
        with torch.no_grad():
            for p, d in zip(sieve.early, torch.split(g, [q.numel() for q in sieve.early])):
                p -= lr * d.view_as(p)
    repeated = flat([p.detach() for p in sieve.early]) - start
    single = -steps * lr * grads[0]
    network.load_state_dict(saved)
    first = grads[0]
    return {"cosine_to_first": min(float(F.cosine_similarity(g, first, dim=0)) for g in grads[1:]),
            "norm_to_first_min": min(float(g.norm() / first.norm()) for g in grads[1:]),
            "norm_to_first_max": max(float(g.norm() / first.norm()) for g in grads[1:]),
            "move_difference": float((repeated - single).norm() / repeated.norm())}


def measure(data: str) -> dict[str, Any]:
    cfg = build_config({"method": {"name": "sieve", **SETTINGS}, "data": {"name": data},
                        "train": {"seed": SEED, "device": "cpu"}, "out": "unused"})
    torch.manual_seed(SEED)
    method, _, loader = build_run(cfg, torch.device("cpu"), DistInfo())
    method.train()
    sieve = method.sieves[0]
    points: list[dict[str, float]] = []
    step = 0
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        for batch in loader:
            if step % EVERY == EVERY - 1:
                moves = compare_moves(sieve, method.network, batch["x"], SETTINGS["forget_steps"])
                points.append({"step": step, **moves})
            method.update(batch, step)
            step += 1
    return {"measured_steps": len(points), "of_steps": step,
            "worst": {k: worst(p[k] for p in points) for k, worst in WORST.items()},
            "median": {k: statistics.median(p[k] for p in points) for k in WORST}, "points": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="result file (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {data: measure(data) for data in DATA}
    for data, r in results.items():
        print(data, r["worst"])
    write_result(args.out, "sieve_forget_gradients",
                 {"data": DATA, "settings": SETTINGS, "epochs": EPOCHS, "every": EVERY, "seed": SEED}, results)


if __name__ == "__main__":
    main()
