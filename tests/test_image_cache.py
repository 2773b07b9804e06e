"""The decoded-image cache: built once, reused, rebuilt on change, equal to the PIL path, safe under two
builders; and bad image files as one clear error, with the cache on (at construction) and off (lazily)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import earlyreadout.data.cache as cache_module
from earlyreadout.cli import main
from earlyreadout.data import DATASETS, BatchLoader, load_splits
from earlyreadout.data.cache import FOLDER_NAME, cached_images
from earlyreadout.data.images import IMAGENET_MEAN, IMAGENET_STD, unreadable
from earlyreadout.errors import UserError
from earlyreadout.params import resolve

SRC = Path(__file__).resolve().parents[1] / "src"


def splits(name: str, **options):
    opts, problems = resolve(DATASETS.get(name).options, options, name)
    assert not problems, problems
    return load_splits(name, opts)


def noise_image(path: Path, seed: int, size=(40, 30), mode="RGB") -> None:
    """A random image (so resizing and cropping show in the values), saved in the format of the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(path)


def csv_tree(root: Path, names: list[str] | None = None) -> Path:
    """A `csv` dataset of noise images: rows 0-3 train, 4-5 val, 6-7 test."""
    names = names or [f"imgs/{i}.jpg" for i in range(8)]
    rows = ["id,filename,split,y,a"]
    for i, name in enumerate(names):
        noise_image(root / name, i)
        rows.append(f"{i},{name},{(0, 0, 0, 0, 1, 1, 2, 2)[i]},{i % 2},{(i // 2) % 2}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def opens(monkeypatch):
    """Counts PIL image opens."""
    count = {"n": 0}
    real = Image.open

    def counting(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return count


def cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / FOLDER_NAME).glob("*.npy"))


# --- built once, reused, rebuilt -----------------------------------------------------------------------
def test_cache_is_built_once_then_read_without_decoding(tmp_path, opens):
    csv_tree(tmp_path)
    first = splits("csv", root=str(tmp_path), image_size=16)
    assert opens["n"] == 8 and len(cache_files(tmp_path)) == 3  # one file per split, under the data root
    x = first["train"].get_x(1)
    again = splits("csv", root=str(tmp_path), image_size=16)
    assert torch.equal(again["train"].get_x(1), x) and again["test"].get_x(0).shape == (3, 16, 16)
    assert opens["n"] == 8  # neither the second construction nor get_x decoded anything
    meta = json.loads(next((tmp_path / FOLDER_NAME).glob("csv-train-*.json")).read_text())
    assert meta["count"] == 4 and meta["shape"] == [4, 3, 16, 16]


def test_changed_file_or_option_rebuilds(tmp_path, opens):
    csv_tree(tmp_path)
    splits("csv", root=str(tmp_path), image_size=16)
    before = set(cache_files(tmp_path))
    stat = (tmp_path / "imgs/0.jpg").stat()
    os.utime(tmp_path / "imgs/0.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    opens["n"] = 0
    splits("csv", root=str(tmp_path), image_size=16)
    assert opens["n"] == 4  # only train, which holds the touched file
    noise_image(tmp_path / "imgs/6.jpg", 99, size=(50, 30))  # new content and size
    opens["n"] = 0
    s = splits("csv", root=str(tmp_path), image_size=16)
    assert opens["n"] == 2
    fresh = splits("csv", root=str(tmp_path), image_size=16, cache=False)
    assert (s["test"].get_x(0) - fresh["test"].get_x(0)).abs().max() < 1e-5
    opens["n"] = 0
    splits("csv", root=str(tmp_path), image_size=20)
    splits("csv", root=str(tmp_path), image_size=16, center_crop=24)
    assert opens["n"] == 16
    assert len(set(cache_files(tmp_path)) - before) == 2 + 3 + 3


def test_half_written_cache_is_never_read(tmp_path, opens):
    csv_tree(tmp_path)
    splits("csv", root=str(tmp_path), image_size=16)
    sidecar = next((tmp_path / FOLDER_NAME).glob("csv-val-*.json"))
    sidecar.unlink()  # as if the process died before writing it
    opens["n"] = 0
    splits("csv", root=str(tmp_path), image_size=16)
    assert opens["n"] == 2 and sidecar.is_file()
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "key": "other"}))
    opens["n"] = 0
    splits("csv", root=str(tmp_path), image_size=16)
    assert opens["n"] == 2


# --- what the cache gives ---------------------------------------------------------------------------------
@pytest.mark.parametrize("center_crop", [None, 24])
def test_eval_tensors_equal_the_pil_path(tmp_path, center_crop):
    csv_tree(tmp_path)
    cached = splits("csv", root=str(tmp_path), image_size=16, center_crop=center_crop, augment=True)
    plain = splits("csv", root=str(tmp_path), image_size=16, center_crop=center_crop, cache=False)
    assert cached["val"].images is not None and plain["val"].images is None
    for split in ("val", "test"):
        for i in range(2):
            a, b = cached[split].get_x(i), plain[split].get_x(i)
            # the same uint8 pixels, normalised as one multiply-add: differences are float rounding (~5e-7)
            assert a.shape == b.shape == (3, 16, 16) and (a - b).abs().max() < 1e-5


def test_augmentation_runs_on_cached_tensors(tmp_path, opens):
    csv_tree(tmp_path)
    train = splits("csv", root=str(tmp_path), image_size=16, augment=True)["train"]
    assert train.images is not None and train.images.shape == (4, 3, 18, 18)  # pre-crop side 16 * 256 / 224
    opens["n"] = 0
    torch.manual_seed(0)
    draws = [train.get_x(0) for _ in range(4)]
    assert opens["n"] == 0 and all(d.shape == (3, 16, 16) for d in draws)
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = draws[0] * std + mean
    assert pixels.min() > -0.01 and pixels.max() < 1.01  # normalised once, from [0, 1]


def test_loader_reads_cached_batches_at_once_or_through_workers(tmp_path, opens):
    csv_tree(tmp_path)
    train = splits("csv", root=str(tmp_path), image_size=16)["train"]
    assert train.reads_batches()
    batch = next(iter(BatchLoader(train, 3, shuffle=True, seed=1)))
    assert torch.equal(batch["x"], torch.stack([train.get_x(int(i)) for i in batch["idx"]]))
    workers = next(iter(BatchLoader(train, 3, shuffle=True, seed=1, num_workers=1)))
    assert torch.equal(workers["x"], batch["x"]) and torch.equal(workers["idx"], batch["idx"])
    augmented = splits("csv", root=str(tmp_path), image_size=16, augment=True)["train"]
    opens["n"] = 0
    assert next(iter(BatchLoader(augmented, 4)))["x"].shape == (4, 3, 16, 16) and opens["n"] == 0


def test_cache_off_decodes_every_time_and_writes_nothing(tmp_path, opens):
    csv_tree(tmp_path)
    s = splits("csv", root=str(tmp_path), image_size=16, cache=False)
    assert opens["n"] == 0 and not (tmp_path / FOLDER_NAME).exists()
    assert "PILToTensor" in [type(t).__name__ for t in s["val"].transform.transforms] and not s["val"].reads_batches()
    s["val"].get_x(0)
    s["val"].get_x(0)
    assert opens["n"] == 2


def test_cache_dir_option_and_home_fallback(tmp_path, monkeypatch):
    csv_tree(tmp_path / "data")
    splits("csv", root=str(tmp_path / "data"), image_size=16, cache_dir=str(tmp_path / "elsewhere"))
    assert len(list((tmp_path / "elsewhere").glob("*.npy"))) == 3 and not (tmp_path / "data" / FOLDER_NAME).exists()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real = cache_module.writable
    monkeypatch.setattr(cache_module, "writable", lambda f: FOLDER_NAME not in str(f) and real(f))
    splits("csv", root=str(tmp_path / "data"), image_size=16)  # data root not writable
    assert len(list((tmp_path / "xdg" / "earlyreadout").glob("*.npy"))) == 3


def test_no_room_on_disk_falls_back_to_decoding_with_one_log_line(tmp_path, monkeypatch, caplog):
    csv_tree(tmp_path)
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _path: SimpleNamespace(free=1000))
    with caplog.at_level(logging.WARNING):
        s = splits("csv", root=str(tmp_path), image_size=16)
    assert s["train"].images is None and s["train"].get_x(0).shape == (3, 16, 16)
    lines = [r.getMessage() for r in caplog.records if "image cache off" in r.getMessage()]
    assert len(lines) == 3 and "GB free" in lines[0] and not cache_files(tmp_path)


def test_cached_images_pickle_without_their_pixels(tmp_path):
    csv_tree(tmp_path)
    train = splits("csv", root=str(tmp_path), image_size=16)["train"]
    train.get_x(0)  # opens the memory map
    copy = pickle.loads(pickle.dumps(train.images))
    assert copy._array is None and torch.equal(copy[3], train.images[3])


# --- two builders at once ---------------------------------------------------------------------------------
BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from earlyreadout.data.cache import cached_images
    folder, me = Path(sys.argv[1]), sys.argv[2]
    paths = sorted(folder.glob("img*.txt"))
    (folder / f"ready-{me}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    calls = []
    def decode(path):
        calls.append(path)
        time.sleep(0.03)
        return np.full((3, 4, 4), int(path.stem[3:]), np.uint8)
    images = cached_images(paths, decode, (3, 4, 4), folder / "cache", "t", {})
    print(len(calls), [int(images[i][0, 0, 0]) for i in range(len(paths))])
""")


def test_two_processes_building_at_once_end_with_one_cache(tmp_path):
    for i in range(30):
        (tmp_path / f"img{i:02d}.txt").write_text(str(i))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(tmp_path), str(k)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready-{k}").exists() for k in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        calls, values = out.split(" ", 1)
        results.append((int(calls), json.loads(values)))
    assert sorted(c for c, _ in results) == [0, 30]  # one built, the other waited and read it
    assert results[0][1] == results[1][1] == list(range(30))
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(left) == 3 and [n.rsplit(".", 1)[1] for n in left] == ["json", "lock", "npy"]  # no temp files


def test_failed_build_leaves_no_cache_behind(tmp_path):
    paths = [tmp_path / f"{i}.bin" for i in range(3)]
    for p in paths:
        p.write_bytes(b"x")

    def decode(path: Path) -> np.ndarray:
        if path.name == "2.bin":
            raise UserError("bad file")
        return np.zeros((3, 2, 2), np.uint8)

    with pytest.raises(UserError, match="bad file"):
        cached_images(paths, decode, (3, 2, 2), tmp_path / "c", "t", {})
    assert [p.suffix for p in (tmp_path / "c").iterdir()] == [".lock"]


# --- bad and unusual image files ------------------------------------------------------------------------
def truncate(path: Path) -> None:
    """Keep the first half of a real JPEG's bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), r"image '.*imgs/3.jpg' listed in the metadata does not exist; restore it or remove"),
    (truncate, r"cannot read image '.*imgs/3.jpg' \(image file is truncated.*; replace the file or remove its row"),
    (lambda p: p.write_text("not a picture"), r"'.*imgs/3.jpg' is not a readable image; replace the file"),
])
def test_bad_image_files_are_one_clear_error(tmp_path, damage, message):
    csv_tree(tmp_path)
    noise_image(tmp_path / "imgs/3.jpg", 3, size=(200, 150))  # big enough that half of it is not all header
    damage(tmp_path / "imgs/3.jpg")
    with pytest.raises(UserError, match=message):  # cache on: found while building, before training
        splits("csv", root=str(tmp_path), image_size=16)
    assert not cache_files(tmp_path) or all("train" not in n for n in cache_files(tmp_path))
    train = splits("csv", root=str(tmp_path), image_size=16, cache=False)["train"]
    train.get_x(2)
    with pytest.raises(UserError, match=message):  # cache off: when the image is asked for
        train.get_x(3)


def test_bad_image_through_the_cli_is_exit_2_and_one_line(tmp_path, capsys):
    csv_tree(tmp_path)
    truncate(tmp_path / "imgs/1.jpg")
    code = main(["train", "--data", "csv", "--data-root", str(tmp_path), "data.image_size=16", "--model",
                 "small-cnn", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "imgs/1.jpg" in err and "truncated" in err


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_and_palette_images_become_rgb(tmp_path, mode):
    csv_tree(tmp_path)
    noise_image(tmp_path / "imgs/0.jpg", 0)
    png = tmp_path / "imgs/0.png"
    noise_image(png, 0, mode=mode)
    meta = tmp_path / "metadata.csv"
    meta.write_text(meta.read_text().replace("imgs/0.jpg", "imgs/0.png"))
    cached = splits("csv", root=str(tmp_path), image_size=16)["train"].get_x(0)
    plain = splits("csv", root=str(tmp_path), image_size=16, cache=False)["train"].get_x(0)
    assert cached.shape == (3, 16, 16) and (cached - plain).abs().max() < 1e-5
    if mode == "L":
        pixels = cached * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[1], pixels[2], atol=1e-5)


def test_paths_with_spaces_just_work(tmp_path):
    names = [f"my images/photo {i}.jpg" for i in range(8)]
    csv_tree(tmp_path / "data set", names)
    s = splits("csv", root=str(tmp_path / "data set"), image_size=16)
    assert s["train"].get_x(0).shape == (3, 16, 16) and len(cache_files(tmp_path / "data set")) == 3


def test_unreadable_error_keeps_the_reason_of_other_os_errors():
    error = unreadable("csv", "a.jpg", OSError("broken data stream"))
    assert str(error) == ("csv: cannot read image 'a.jpg' (broken data stream; truncated or damaged?); "
                          "replace the file or remove its row from the metadata")


def test_worker_processes_persist_across_epochs_and_follow_each_epochs_order(tmp_path):
    csv_tree(tmp_path)
    train = splits("csv", root=str(tmp_path), image_size=16, cache=False)["train"]
    plain, workers = BatchLoader(train, 1, shuffle=True, seed=3), BatchLoader(train, 1, shuffle=True, seed=3,
                                                                             num_workers=1)
    pools = []
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        workers.set_epoch(epoch)
        expected, got = [b["idx"].tolist() for b in plain], [b["idx"].tolist() for b in workers]
        assert got == expected
        pools.append(workers._workers)
    assert pools[0] is pools[1] is not None  # one pool of worker processes for both epochs
