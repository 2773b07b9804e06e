"""The ceiling, defined once: ERM on group-balanced train, the best a method can hope for on a generated
benchmark, shown beside the others (`compare`'s `ceiling`, a study's `Arm(ceiling=True)`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from earlyreadout.data import DATASETS
from earlyreadout.errors import UserError

CEILING = "ceiling"
METHOD = "erm"


def ceiling_options(data: str, options: Mapping[str, Any]) -> dict[str, float]:
    """The data options that make dataset `data` (with `options`) the ceiling's: one attribute per class, so
    an agreement of 1/n_classes leaves every (label, attribute) group equally likely in train."""
    if not has_ceiling(data):
        raise UserError(f"the {CEILING} (ERM on group-balanced train) needs a generated benchmark with a "
                        f"correlation option; {data!r} has none")
    return {"correlation": 1.0 / options.get("n_classes", 2)}


def has_ceiling(data: str) -> bool:
    """Whether dataset `data` (a known one) is a generated benchmark whose train correlation can be set."""
    return "correlation" in DATASETS.get(data).options
