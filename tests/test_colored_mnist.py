import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.data.idx import parse_idx, read_idx
from earlyreadout.errors import UserError
from earlyreadout.params import resolve
from earlyreadout.train.engine import train


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand: 00 00, type code, ndim, big-endian int32 sizes, big-endian values."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.astype(dtype).tobytes()


def write_mnist(root: Path, n_train: int = 60, n_test: int = 30, gz: bool = False) -> None:
    rng = np.random.default_rng(0)
    folder = root / "MNIST" / "raw"  # torchvision's layout
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for name, data in ((f"{prefix}-images-idx3-ubyte", idx_bytes(images, 0x08)),
                           (f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, 0x08))):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


def splits(root: Path, **options):
    opts, problems = resolve(DATASETS.get("colored-mnist").options, {"root": str(root), **options}, "colored-mnist")
    assert not problems, problems
    return load_splits("colored-mnist", opts)


def test_parse_idx_reads_hand_written_files_of_three_types():
    ints = np.array([[1, -2, 3], [70000, 5, -6]])
    assert parse_idx(idx_bytes(ints, 0x0C), "t").tolist() == ints.tolist()
    floats = np.array([0.5, -1.25])
    assert parse_idx(idx_bytes(floats, 0x0D), "t").tolist() == [0.5, -1.25]
    assert parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 255]), "t").tolist() == [7, 255]


def test_parse_idx_refuses_what_is_not_a_whole_idx_file():
    with pytest.raises(UserError, match="is not an IDX file"):
        parse_idx(b"\x89PNG....", "x.png")
    with pytest.raises(UserError, match="truncated"):
        parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), "cut")
    with pytest.raises(UserError, match="header is cut short"):
        parse_idx(bytes([0, 0, 8, 2, 0, 0]), "cut")


def test_read_idx_decompresses_gz(tmp_path):
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(np.arange(6).reshape(2, 3), 0x08)))
    assert read_idx(tmp_path / "a.gz").tolist() == [[0, 1, 2], [3, 4, 5]]
    (tmp_path / "b.gz").write_bytes(b"not gzip")
    with pytest.raises(UserError, match="cannot read"):
        read_idx(tmp_path / "b.gz")


@pytest.mark.parametrize("gz", [False, True])
def test_colored_mnist_colours_train_by_class_and_val_test_uniformly(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    s = splits(tmp_path, correlation=1.0, val_fraction=0.25)
    assert [len(s[k]) for k in ("train", "val", "test")] == [45, 15, 30]
    assert s["train"].n_groups == 100 and s["train"].x.shape[1:] == (3, 28, 28)
    assert torch.equal(s["train"].a, s["train"].y)  # correlation 1: every train digit in its class colour
    assert not torch.equal(s["test"].a, s["test"].y)
    # the strokes are coloured: each channel is the same ink map times the image's colour (rank one)
    assert (torch.linalg.svdvals(s["test"].x.flatten(2))[:, 1] < 1e-4).all()
    swapped = s["test"].counterfactual()
    assert torch.equal(swapped.a, (s["test"].a + 1) % 10) and torch.equal(swapped.y, s["test"].y)
    assert torch.equal(swapped.x.amax(1) > 0, s["test"].x.amax(1) > 0)  # the same strokes, another colour


def test_colored_mnist_says_what_is_missing(tmp_path):
    defaults, _ = resolve(DATASETS.get("colored-mnist").options, {}, "colored-mnist")
    with pytest.raises(UserError, match="--data-root"):
        load_splits("colored-mnist", defaults)
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="no 't10k-labels-idx1-ubyte'"):
        splits(tmp_path)


def test_colored_mnist_trains_the_sieve(tmp_path):
    write_mnist(tmp_path / "data")
    cfg = build_config({"method": {"name": "sieve", "readout_width": 4, "probe": False},
                        "data": {"name": "colored-mnist", "root": str(tmp_path / "data"), "n_train": 32},
                        "model": {"name": "small-cnn", "width": 4},
                        "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64}, "out": str(tmp_path / "run")})
    result = train(cfg, log=lambda _m: None)
    assert 0.0 <= result["test"]["average_accuracy"] <= 1.0
