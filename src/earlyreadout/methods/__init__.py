"""Training methods, one per file, grouped by family; each registers itself by name in `METHODS` with `@register`."""

import importlib
import pkgutil

from earlyreadout.methods.base import METHODS, Context, Method, refuse_lacking_labels, register

for _module in pkgutil.walk_packages(__path__, __name__ + "."):
    importlib.import_module(_module.name)  # every family's files, so their @register lines run

__all__ = ["METHODS", "Context", "Method", "refuse_lacking_labels", "register"]
