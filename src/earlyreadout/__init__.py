"""earlyreadout: find and remove shortcut learning in deep networks with early readouts.

The public API (`earlyreadout.api`, loaded on first use so the command line stays fast): `csv_splits`,
`tensor_splits`, `torch_splits`, `load_model`, `evaluate`, `diagnose`, `fix_last_layer`, `train_and_fix`.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["csv_splits", "describe", "diagnose", "evaluate", "fix_last_layer", "load_model", "tensor_splits",
           "torch_splits", "train_and_fix"]


def __getattr__(name: str) -> Any:
    """The public API's names, imported from `earlyreadout.api` when first asked for."""
    if name in __all__:
        from earlyreadout import api

        return getattr(api, name)
    raise AttributeError(f"module 'earlyreadout' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
