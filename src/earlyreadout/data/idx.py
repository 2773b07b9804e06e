"""Reading IDX files, the format of the MNIST release (optionally gzipped), into tensors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from earlyreadout.errors import UserError

# IDX type codes -> big-endian NumPy dtypes
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """The array an IDX file's bytes hold: two zero bytes, a type code, the number of dimensions, each
    dimension as a big-endian int32, then the values, big-endian. `name` is for error messages."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise UserError(f"{name} is not an IDX file (it starts with {data[:4].hex() or 'nothing'}; an IDX file "
                        "starts with 00 00, a type code 08-0e and its number of dimensions)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name}: the IDX header is cut short ({len(data)} bytes, {header} expected)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise UserError(f"{name}: {len(data)} bytes, but its header ({'x'.join(map(str, shape))} values of "
                        f"{dtype.name}) needs {expected}; the file is truncated or not what its name says")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (`.gz` ones are decompressed) as a tensor of its type."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {str(path)!r}: {e}") from None
    return torch.from_numpy(parse_idx(data, repr(str(path))).copy())
