"""Progress bars that stay quiet in CI and when output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(items: Iterable[T], desc: str = "", enabled: bool | None = None, **kw: Any) -> Iterable[T]:
    """`items` wrapped in a tqdm bar when `enabled` (None: only on an interactive terminal outside CI)."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        return items
    return tqdm(items, desc=desc, leave=False, dynamic_ncols=True, **kw)
