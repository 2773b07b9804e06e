"""Mixed precision: `train.precision` as an autocast context and a gradient scaler.

bf16 needs no scaling (its exponent range is fp32's); fp16 does, so its losses are scaled before backward and
the scale adapts to overflow (torch.amp.GradScaler). fp32 turns both into no-ops, so one code path serves all.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast to the precision's dtype on `device`'s type (CPU too); disabled for fp32."""
    return torch.autocast(device.type, dtype=DTYPES.get(precision, torch.bfloat16), enabled=precision != "fp32")


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler that is active for fp16 only (for fp32 and bf16 it passes losses and steps through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
