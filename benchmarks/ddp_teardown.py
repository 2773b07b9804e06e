"""How often a two-process gloo run aborts as it exits: with `distributed.teardown` as the engine calls it, and
with the teardown it replaced.

Each trial starts two fresh worker processes as torchrun starts them (both ranks clients of a store this script
hosts, as of torchrun's agent). Each joins through `distributed.setup`, trains a small DDP network for a few
steps, runs the collectives a run ends with (a sum, a broadcast object), and leaves:
- `teardown`: the network is built and trained inside a function that returns first, then
  `distributed.teardown()` runs, as in `train.engine.train`;
- `barrier, then destroy (before)`: a gloo barrier and `destroy_process_group()` with the DDP network still
  alive, as the engine did before;
- `network freed, then barrier and destroy`: the barrier teardown after the network is freed and collected,
  which tells the two parts of the change apart.
A trial fails when either worker exits nonzero (the abort seen in CI: "terminate called without an active
exception", rank 1, during interpreter exit). Arms alternate trial by trial. Writes
benchmarks/results/ddp_teardown.json after every trial.

    python -m benchmarks.ddp_teardown --trials 150
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from earlyreadout import distributed

ARMS = {"teardown": "teardown", "before": "barrier, then destroy (before)",
        "freed": "network freed, then barrier and destroy"}


def train_briefly() -> nn.Module:
    """A few DDP steps and the collectives that end a run; returns the wrapped network."""
    torch.manual_seed(0)
    net = nn.parallel.DistributedDataParallel(nn.Linear(8, 2))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(5):
        net(torch.randn(4, 8)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    distributed.all_reduce_sum(torch.ones(3))
    distributed.broadcast_object({"done": True})
    return net


def worker(arm: str) -> None:
    distributed.setup(torch.device("cpu"))
    if arm == "teardown":
        train_briefly()
        distributed.teardown()
    elif arm == "freed":
        train_briefly()
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    else:
        net = train_briefly()  # noqa: F841  (alive through the teardown, as in the engine before)
        dist.barrier()
        dist.destroy_process_group()


def trial(arm: str) -> list[int]:
    """Exit codes of the two workers of one trial."""
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=60), wait_for_workers=False)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": "2",
           "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_USE_AGENT_STORE": "True", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", arm],
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for rank in range(2)]
    return [proc.wait(timeout=120) for proc in procs]  # the store serves them until this returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150, help="trials per arm")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ddp_teardown.json"))
    parser.add_argument("--worker", choices=sorted(ARMS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    # imported here, not at the top: the workers start twice as fast without the engine it imports
    from benchmarks.protocol import write_result

    failures: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    out = Path(args.out)
    for i in range(args.trials):
        for arm in ARMS:
            codes = trial(arm)
            if any(codes):
                failures[arm].append({"trial": i, "exit_codes": codes})
        results = {ARMS[arm]: {"trials": i + 1, "failed": len(f), "failures": f} for arm, f in failures.items()}
        write_result(out, "ddp_teardown", {"trials_per_arm": args.trials, "processes": 2, "backend": "gloo",
                                           "device": "cpu"}, results)  # after every trial: a cut run keeps its counts
        print(f"trial {i + 1}/{args.trials}: " + ", ".join(f"{a} {len(f)} failed" for a, f in failures.items()),
              flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
