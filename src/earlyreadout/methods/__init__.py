"""Training methods, one per file, registered by name in `METHODS`."""

from earlyreadout.methods import erm  # noqa: F401
from earlyreadout.methods.base import METHODS, Context, Method, register

__all__ = ["METHODS", "Context", "Method", "register"]
