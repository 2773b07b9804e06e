"""ResNet images per second: the engine's ERM epochs against a bare torchvision loop on the same in-memory
images, batch size, precision (bf16 autocast) and memory format (channels-last); peak GPU memory of each.

    python -m benchmarks.gpu_throughput --out benchmarks/results/gpu_throughput.json      # one GPU, ~2 minutes
    python -m benchmarks.gpu_throughput --device cpu --arch resnet18 --size 32 --images 64 --batch 16 \
        --epochs 1 --precision fp32 --out /tmp/smoke.json                                  # a CPU smoke test

Both sides include their first, warm-up steps; the runs alternate (bare, engine, bare, engine) and the
medians are reported, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from earlyreadout.config import build_config
from earlyreadout.data.base import TensorGroupedDataset
from earlyreadout.train.engine import train

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def random_splits(n: int, size: int) -> dict[str, TensorGroupedDataset]:
    """Seeded random images (train: n, val and test: 256) with two classes and two attributes."""
    gen = torch.Generator().manual_seed(0)
    out = {}
    for split, count in (("train", n), ("val", 256), ("test", 256)):
        out[split] = TensorGroupedDataset(
            torch.randn(count, 3, size, size, generator=gen), name="random", split=split,
            y=torch.randint(2, (count,), generator=gen), a=torch.randint(2, (count,), generator=gen),
            class_names=["0", "1"], attribute_names=["0", "1"], info={"modality": "image", "shape": (3, size, size)})
    return out


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bare_loop(args: argparse.Namespace, split: TensorGroupedDataset, device: torch.device) -> dict[str, float | None]:
    """Images/s and peak memory of the plainest loop: randperm, slice, copy, autocast forward, CE, SGD step."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.arch, num_classes=2).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y, dtype = split.x, split.y, DTYPES[args.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    peak_reset(device)
    start = time.perf_counter()
    for _ in range(args.epochs):
        for idx in torch.randperm(len(y)).split(args.batch):
            xb = x[idx].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yb = y[idx].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    loss.item()
    return {"images_per_s": args.epochs * len(y) / (time.perf_counter() - start), "peak_gb": peak_gb(device)}


def engine_loop(args: argparse.Namespace, splits: dict[str, TensorGroupedDataset],
                device: torch.device) -> dict[str, float | None]:
    """Images/s of the engine's training epochs (its own clock, validation excluded) and the run's peak memory."""
    with tempfile.TemporaryDirectory() as out:
        cfg = build_config({
            "method": "erm", "data": {"name": "colored-digits"},
            "model": {"name": "resnet", "arch": args.arch, "small_input": False},
            "train": {"epochs": args.epochs, "batch_size": args.batch, "eval_batch_size": 256, "device": str(device),
                      "precision": args.precision, "channels_last": True, "progress": False},
            "out": out})
        peak_reset(device)
        result = train(cfg, log=lambda _m: None, splits=splits)
    return {"images_per_s": args.epochs * len(splits["train"]) / result["train_time_s"], "peak_gb": peak_gb(device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="resnet50", choices=("resnet18", "resnet34", "resnet50"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--precision", default="bf16", choices=tuple(DTYPES))
    p.add_argument("--out", required=True)
    args = p.parse_args()
    device = torch.device(args.device)
    splits = random_splits(args.images, args.size)
    runs: dict[str, list[dict[str, float | None]]] = {"bare": [], "engine": []}
    for _ in range(args.repeats):
        runs["bare"].append(bare_loop(args, splits["train"], device))
        runs["engine"].append(engine_loop(args, splits, device))
    median = {k: statistics.median(r["images_per_s"] for r in v) for k, v in runs.items()}
    commit = os.environ.get("COMMIT") or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                                         text=True, check=False).stdout.strip()
    result = {
        "benchmark": "gpu_throughput", "commit": commit, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else args.device,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "images_per_s": median, "engine_over_bare": median["engine"] / median["bare"],
        "peak_gb": {k: max((r["peak_gb"] or 0.0) for r in v) or None for k, v in runs.items()}, "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("device", "images_per_s", "engine_over_bare", "peak_gb")}))


if __name__ == "__main__":
    main()
