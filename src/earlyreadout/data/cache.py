"""Decoded-image cache: each image decoded and resized once into a uint8 `.npy` file read by memory map.

A cache file is named by a hash of the image files (path, size, mtime) and the preprocessing options, so
a changed file or option gives a new key and a new file. It is built into a temporary file in the same
folder and moved into place with `os.replace`; its JSON sidecar (key, shape, count) is written last,
so a cache without a matching sidecar is never read. A lock file makes a second process (another DDP
rank, a search worker) wait for the first one's build and then read it instead of building again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlyreadout.progress import bar

FORMAT = 1  # bump when the file layout changes, so old caches are never read
FOLDER_NAME = ".earlyreadout-cache"
SPARE_BYTES = 256 * 2**20  # leave this much free beside a new cache
CHUNK = 256  # images decoded per batch of threads

log = logging.getLogger(__name__)


def cache_folder(chosen: str | None, data_root: str | None) -> Path:
    """Where caches live: `chosen`; else `.earlyreadout-cache/` under the data root when it is writable;
    else `$XDG_CACHE_HOME/earlyreadout` (default `~/.cache/earlyreadout`)."""
    if chosen is not None:
        return Path(chosen).expanduser()
    if data_root is not None:
        root = Path(data_root).expanduser()
        folder = (root if root.is_dir() else root.parent) / FOLDER_NAME
        if writable(folder):
            return folder
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "earlyreadout"


def writable(folder: Path) -> bool:
    """Whether `folder` exists or can be made, and a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


def cache_key(paths: Sequence[Path], options: dict[str, Any]) -> str:
    """Hash of every file's path, size and mtime and of the preprocessing options.

    A missing file raises FileNotFoundError (its `filename` names it), before anything is decoded.
    """
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "options": options}, sort_keys=True).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class CachedImages:
    """A finished cache file: item `i` is image `i` as a uint8 tensor of the cached shape.

    The memory map is opened on first use in each process and never pickled, so DataLoader workers
    (fork or spawn) each map the file instead of copying the array.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path = path
        self.shape = shape
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int | torch.Tensor) -> torch.Tensor:
        """Image `i` (3, H, W), or the images of an index tensor stacked (n, 3, H, W) in one read."""
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        index = i.numpy() if isinstance(i, torch.Tensor) else i
        return torch.from_numpy(np.array(self._array[index]))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}


@contextmanager
def locked(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `path`; say so once when another process holds it first."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("waiting for another process to finish the %s", what)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def finished(sidecar: Path, key: str) -> tuple[int, ...] | None:
    """The shape recorded by a finished cache's sidecar when it holds `key`, else None."""
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key or not sidecar.with_suffix(".npy").is_file():
        return None
    return tuple(meta["shape"])


def build(target: Path, paths: Sequence[Path], decode: Callable[[Path], np.ndarray],
          item_shape: tuple[int, ...], key: str, desc: str) -> None:
    """Decode every path into a temporary array next to `target`, move it into place, write the sidecar."""
    shape = (len(paths), *item_shape)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        threads = max(1, len(os.sched_getaffinity(0)))
        with ThreadPoolExecutor(threads) as pool:  # PIL releases the GIL while decoding and resizing
            items = (item for start in range(0, len(paths), CHUNK)
                     for item in pool.map(decode, paths[start:start + CHUNK]))
            for i, item in enumerate(bar(items, desc=desc, total=len(paths))):
                array[i] = item
        array.flush()
        del array
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar = target.with_suffix(".json")
    tmp_meta = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps({"key": key, "shape": list(shape), "count": len(paths), "format": FORMAT}))
    os.replace(tmp_meta, sidecar)


def cached_images(paths: Sequence[Path], decode: Callable[[Path], np.ndarray], item_shape: tuple[int, ...],
                  folder: Path, label: str, options: dict[str, Any]) -> CachedImages | None:
    """The cache of `decode(path)` for every path (uint8 arrays of `item_shape`), built when missing.

    Returns None, after one log line, when the folder cannot be written or lacks the space; the caller
    then decodes on the fly.
    """
    key = cache_key(paths, options)
    target = folder / f"{label}-{key[:16]}.npy"
    shape = finished(target.with_suffix(".json"), key)
    if shape is not None:
        return CachedImages(target, shape)
    nbytes = len(paths) * math.prod(item_shape)
    if not writable(folder):
        log.warning("image cache off for %s: cannot write to %s; decoding images every epoch", label, folder)
        return None
    free = shutil.disk_usage(folder).free
    if free < nbytes + SPARE_BYTES:
        log.warning("image cache off for %s: it needs %.1f GB but %s has %.1f GB free; decoding images every "
                    "epoch (choose another data.cache_dir)", label, nbytes / 1e9, folder, free / 1e9)
        return None
    with locked(target.with_suffix(".lock"), f"image cache {target.name}"):
        shape = finished(target.with_suffix(".json"), key)
        if shape is None:
            build(target, paths, decode, item_shape, key, f"caching {label} images")
            shape = (len(paths), *item_shape)
    return CachedImages(target, shape)
