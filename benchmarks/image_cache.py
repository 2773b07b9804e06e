"""Decoded-image cache vs decoding every epoch, on a generated Waterbirds-layout tree of ~400x300 JPEGs.

Writes benchmarks/results/image_cache.json with, in one run:
(a) training-loader throughput alone (no model): the project's cached train split through BatchLoader vs a
    plain torchvision pipeline (decode_jpeg + resize + centre crop, DataLoader), images/s and their ratio,
    without and with augmentation; plus the time to build the cache;
(b) one epoch of ERM with the default model (ResNet-18, 224 px) through `earlyreadout train` vs a plain
    loop (PIL decode + resize + crop, DataLoader, torchvision ResNet-18, SGD), each a fresh process timed
    from start to exit, so the project's first epoch includes building the cache;
(c) peak resident memory of those processes (`/usr/bin/time -v`).
Project and plain runs alternate, so load from other processes on the machine hits both alike.

    PYTHONPATH=src python -m benchmarks.image_cache             # the full run (several minutes; longer on busy cores)
    PYTHONPATH=src python -m benchmarks.image_cache --plain-epoch ROOT  # (b)'s plain loop, used by the full run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision.io import decode_jpeg, read_file
from torchvision.models import resnet18
from torchvision.transforms import v2

from benchmarks.protocol import RESULTS, ROOT, write_result
from earlyreadout.data import DATASETS, BatchLoader, load_splits
from earlyreadout.params import resolve

N_LOADER, N_EPOCH, N_EVAL = 1000, 300, 20  # train images of (a) and (b); val and test images each
BATCH, SIZE, SIDE = 64, 224, 256
REPEATS_LOADER, REPEATS_EPOCH = 3, 2
FOLDER = "waterbird_complete95_forest2water2"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
THREADS_NOTE = ("torch_threads_2 is torch's default here; on cores shared with another job, per-image tensor ops on "
                "two threads mostly wait for each other, which slows the plain pipeline (per image) more than the "
                "cache (per batch); torch_threads_1 is the fair floor")


def photo(rng: np.random.Generator, width: int = 400, height: int = 300) -> Image.Image:
    """A synthetic photo: smooth colour fields, a few shapes, sensor-like noise (JPEG size of real photos)."""
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(coarse)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(10, 80))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    pixels = np.asarray(coarse).astype(np.int16) + rng.normal(0, 10, (height, width, 3)).astype(np.int16)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def make_tree(root: Path, n_train: int, seed: int = 0) -> Path:
    """A Waterbirds release folder: class folders of JPEGs (quality 90) and metadata.csv."""
    folder = root / FOLDER
    rng = np.random.default_rng(seed)
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    splits = [0] * n_train + [1] * N_EVAL + [2] * N_EVAL
    for i, split in enumerate(splits):
        y, place = int(rng.integers(0, 2)), int(rng.integers(0, 2))
        name = f"{'001.Black_footed_Albatross' if y else '045.Northern_Fulmar'}/bird_{i:05d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        photo(rng).save(folder / name, quality=90)
        rows.append(f"{i + 1},{name},{y},{split},{place},/p/{i}.jpg")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def train_rows(folder: Path) -> list[tuple[Path, int]]:
    """(path, label) of the train rows of a tree's metadata.csv."""
    lines = (folder / "metadata.csv").read_text().splitlines()[1:]
    return [(folder / f[1], int(f[2])) for f in (line.split(",") for line in lines) if f[3] == "0"]


def eval_rows(folder: Path) -> list[tuple[Path, int]]:
    lines = (folder / "metadata.csv").read_text().splitlines()[1:]
    return [(folder / f[1], int(f[2])) for f in (line.split(",") for line in lines) if f[3] != "0"]


class DecodeEveryTime(Dataset):
    """The plain pipeline: read and decode each JPEG (torchvision.io or PIL), resize, crop, normalise."""

    def __init__(self, rows: list[tuple[Path, int]], augment: bool, use_pil: bool):
        self.rows, self.use_pil = rows, use_pil
        if use_pil:
            self.transform = T.Compose([T.Resize((SIDE, SIDE)), T.CenterCrop(SIZE), T.ToTensor(), T.Normalize(MEAN, STD)])
            return
        head = ([v2.RandomResizedCrop(SIZE, scale=(0.7, 1.0), antialias=True), v2.RandomHorizontalFlip()] if augment
                else [v2.Resize((SIDE, SIDE), antialias=True), v2.CenterCrop(SIZE)])
        self.transform = v2.Compose(head + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, y = self.rows[i]
        if self.use_pil:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB")), y
        return self.transform(decode_jpeg(read_file(str(path)))), y


def images_per_s(batches) -> float:
    """Images per second of one pass over an iterable of batches (dicts with "x", or (x, y) pairs)."""
    t0, n = time.perf_counter(), 0
    for batch in batches:
        n += len(batch["x"] if isinstance(batch, dict) else batch[0])
    return n / (time.perf_counter() - t0)


def loader_throughput(root: Path, cache_dir: Path) -> dict[str, object]:
    """(a): the cached train split through BatchLoader vs the plain torchvision DataLoader, alternating, with
    torch's default threads and with one thread (per-image tensor ops on two threads shared with another
    process's threads mostly wait for each other: that slows the plain pipeline, not the batched cache)."""
    rows = train_rows(root / FOLDER)
    default_threads = torch.get_num_threads()
    out: dict[str, object] = {}
    for augment in (False, True):
        opts, _ = resolve(DATASETS.get("waterbirds").options,
                          {"root": str(root), "augment": augment, "cache_dir": str(cache_dir)}, "waterbirds")
        t0 = time.perf_counter()
        train = load_splits("waterbirds", opts)["train"]
        build_s = time.perf_counter() - t0
        if train.images is None:
            raise RuntimeError("the cache was not built (see the log line above)")
        plain = DataLoader(DecodeEveryTime(rows, augment, use_pil=False), batch_size=BATCH, shuffle=True)
        key = "augment" if augment else "no_augment"
        out[key] = {"cache_build_s": round(build_s, 2),
                    "cache_build_images_per_s": round((len(rows) + 2 * N_EVAL) / build_s, 1)}
        for threads in (default_threads, 1):
            torch.set_num_threads(threads)
            cached, decoded = [], []
            for r in range(REPEATS_LOADER):
                decoded.append(images_per_s(plain))
                cached.append(images_per_s(BatchLoader(train, BATCH, shuffle=True, seed=r)))
            out[key][f"torch_threads_{threads}"] = {
                "cached_images_per_s": [round(v, 1) for v in cached],
                "decoded_images_per_s": [round(v, 1) for v in decoded],
                "ratio_cached_over_decoded_median": round(statistics.median(cached) / statistics.median(decoded), 2),
            }
        torch.set_num_threads(default_threads)
    return out


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak resident GB) of a command run under /usr/bin/time -v."""
    t0 = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], check=False, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"{cmd} failed:\n{done.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return wall, rss_kb / 2**20


def plain_epoch(root: Path) -> None:
    """(b)'s plain loop: one SGD epoch of torchvision ResNet-18 over PIL-decoded train images, then val/test."""
    torch.manual_seed(0)
    folder = root / FOLDER
    model = resnet18(num_classes=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    for x, y in DataLoader(DecodeEveryTime(train_rows(folder), False, use_pil=True), batch_size=BATCH, shuffle=True):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    model.eval()
    with torch.no_grad():
        for x, _ in DataLoader(DecodeEveryTime(eval_rows(folder), False, use_pil=True), batch_size=BATCH):
            model(x)


def epoch_comparison(root: Path, work: Path) -> dict[str, object]:
    """(b) and (c): `earlyreadout train` (cold cache each time) vs the plain loop, alternating processes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    project, plain, project_rss, plain_rss = [], [], [], []
    for r in range(REPEATS_EPOCH):
        wall, rss = timed([sys.executable, "-m", "benchmarks.image_cache", "--plain-epoch", str(root)], env)
        plain.append(wall)
        plain_rss.append(rss)
        wall, rss = timed([sys.executable, "-m", "earlyreadout", "train", "--data", "waterbirds", "--data-root",
                           str(root), "--method", "erm", "--epochs", "1", "--batch-size", str(BATCH), "--device",
                           "cpu", "--out", str(work / f"run{r}"), f"data.cache_dir={work / f'cache{r}'}",
                           "train.progress=false"], env)
        project.append(wall)
        project_rss.append(rss)
    return {
        "project_s": [round(v, 1) for v in project], "plain_s": [round(v, 1) for v in plain],
        "ratio_project_over_plain_median": round(statistics.median(project) / statistics.median(plain), 3),
        "project_peak_rss_gb": [round(v, 2) for v in project_rss], "plain_peak_rss_gb": [round(v, 2) for v in plain_rss],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        make_tree(work / "loader", N_LOADER)
        make_tree(work / "epoch", N_EPOCH, seed=1)
        jpeg_kb = statistics.mean(p.stat().st_size for p in (work / "loader").rglob("*.jpg")) / 1024
        generate_s = time.perf_counter() - t0
        loader = loader_throughput(work / "loader", work / "loader-cache")
        epoch = epoch_comparison(work / "epoch", work)
    result = {
        "what": "decoded-image cache vs decoding every epoch; generated Waterbirds-layout tree of 400x300 JPEGs "
                "(quality 90, smooth colour fields + shapes + noise), 224 px input, batch 64, CPU",
        "machine": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "note": "shared with a background experiment using the same cores; project and plain runs "
                            "were interleaved, so its load hits both alike; absolute numbers are noisy, ratios less"},
        "tree": {"mean_jpeg_kb": round(jpeg_kb, 1), "generate_s": round(generate_s, 1)},
        "a_loader_throughput": {
            "images": N_LOADER, "repeats": REPEATS_LOADER, "num_workers": 0,
            "cached": "project: waterbirds train split from the cache through BatchLoader (uint8 memmap -> float, "
                      "normalise; with augmentation a random resized crop + flip on the tensor)",
            "decoded": "plain: torchvision.io.decode_jpeg + v2 resize 256 + centre crop 224 (augment: random resized "
                       "crop + flip) + normalise, torch DataLoader, same batch size and workers",
            **loader, "threads_note": THREADS_NOTE, "target": "ratio >= 5",
        },
        "b_one_epoch_erm": {
            "train_images": N_EPOCH, "val_test_images": N_EVAL, "repeats": REPEATS_EPOCH,
            "note": f"measured on {N_EPOCH} train images (not {N_LOADER}) to fit the shared machine; each side is one "
                    "fresh process timed start to exit: imports, data, one epoch, val and test evaluation; the "
                    "project run starts from an empty cache each time, so it includes the cache build",
            "project": "earlyreadout train --data waterbirds --method erm --epochs 1 (ResNet-18 default model, "
                       "random init, 224 px, SGD lr 0.01 momentum 0.9 wd 1e-4)",
            "plain": "PIL decode + Resize 256 + CenterCrop 224 + ToTensor + Normalize, DataLoader, torchvision "
                     "resnet18(num_classes=2), same SGD",
            **{k: v for k, v in epoch.items() if "rss" not in k}, "target": "ratio <= 1.2",
        },
        "c_peak_memory": {
            "project_peak_rss_gb": epoch["project_peak_rss_gb"], "plain_peak_rss_gb": epoch["plain_peak_rss_gb"],
            "how": "Maximum resident set size of /usr/bin/time -v for the processes of (b)", "target": "< 4 GB",
        },
    }
    settings = {"n_loader": N_LOADER, "n_epoch": N_EPOCH, "n_eval": N_EVAL, "batch": BATCH, "size": SIZE,
                "repeats_loader": REPEATS_LOADER, "repeats_epoch": REPEATS_EPOCH}
    write_result(RESULTS / "image_cache.json", "image_cache", settings, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain-epoch", type=Path, metavar="ROOT", help="time only (b)'s plain loop on ROOT (the full "
                        "run calls this in a fresh process)")
    args = parser.parse_args()
    if args.plain_epoch is not None:
        plain_epoch(args.plain_epoch)
    else:
        main()
