"""Engine ERM loop vs a minimal hand-written PyTorch loop: same model, data, batch size, one process.

`python -m benchmarks.engine_throughput [--threads N]` writes benchmarks/results/engine_throughput.json with
examples/s of each and their ratio. The two are run alternately several times and the medians compared, so
machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.protocol import RESULTS, write_result
from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.models import build_model
from earlyreadout.params import resolve
from earlyreadout.train.engine import train

EPOCHS, BATCH, REPEATS = 2, 64, 3
DATA = {"n_train": 4000, "n_val": 200, "n_test": 200}


def hand_loop(splits, seed: int) -> float:
    """Examples per second of the plainest loop: randperm, slice, forward, CE, backward, SGD step."""
    torch.manual_seed(seed)
    train_split = splits["train"]
    model = build_model("small-cnn", {"width": 32}, train_split.info, train_split.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = train_split.x, train_split.y
    model.train()
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(y)).split(BATCH):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
    return EPOCHS * len(y) / (time.perf_counter() - t0)


def engine_loop(splits, seed: int, out: Path) -> float:
    """Examples per second of the engine's training epochs (its own clock excludes validation)."""
    cfg = build_config({"method": "erm", "data": {"name": "colored-digits", **DATA}, "model": {"name": "small-cnn"},
                        "train": {"epochs": EPOCHS, "batch_size": BATCH, "seed": seed, "progress": False},
                        "out": str(out)})
    result = train(cfg, log=lambda _m: None, splits=splits)
    return EPOCHS * len(splits["train"]) / result["train_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: %(default)s)")
    torch.set_num_threads(parser.parse_args().threads)
    opts, _ = resolve(DATASETS.get("colored-digits").options, DATA, "colored-digits")
    splits = load_splits("colored-digits", opts)
    hand, engine = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(REPEATS):
            hand.append(hand_loop(splits, r))
            engine.append(engine_loop(splits, r, Path(tmp) / f"run{r}"))
    result = {
        "what": "training examples/s, small-cnn width 32 on colored-digits 28x28, batch 64, CPU",
        "threads": torch.get_num_threads(), "repeats": REPEATS, "epochs_per_repeat": EPOCHS,
        "hand_written_examples_per_s": hand, "engine_examples_per_s": engine,
        "ratio_engine_over_hand_median": statistics.median(engine) / statistics.median(hand),
        "target": ">= 0.9",
    }
    write_result(RESULTS / "engine_throughput.json", "engine_throughput",
                 {"data": DATA, "epochs": EPOCHS, "batch": BATCH, "repeats": REPEATS}, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
