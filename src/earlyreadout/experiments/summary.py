"""Mean ± std over the logged rows of one arm's seeded runs."""

from __future__ import annotations

from typing import Any

from earlyreadout.metrics import mean_std

METRICS = ("test_worst_group", "val_worst_group", "test_average", "train_time_s", "retrain_time_s")


def last_measure(row: dict[str, Any], name: str) -> float | None:
    """The last epoch's value of a logged measure (e.g. a fresh probe's accuracy); None where none is."""
    values = [m[name] for m in row.get("measures", []) if m.get(name) is not None]
    return values[-1] if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeded rows of every metric they all hold (worst-group and average accuracy, times,
    the last epoch's fresh probes)."""
    out: dict[str, Any] = {"seeds": [r.get("seed") for r in rows]}
    for metric in METRICS:
        if all(metric in r for r in rows):
            out[metric] = mean_std([r[metric] for r in rows])
    probes = sorted({k for r in rows for m in r.get("measures", []) for k in m if k.startswith("probe_")})
    for name in probes:
        values = [last_measure(r, name) for r in rows]
        if None not in values:
            out[f"{name}_last_epoch"] = mean_std(values)
    return out
