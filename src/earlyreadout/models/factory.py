"""A model from the user's own code: `FILE.py:CALLABLE` or `package.module:CALLABLE`, called with the data's class
count where it takes one (`n_classes` / `num_classes`) and with `model.kwargs`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.params import Param

FACTORY_HELP = "give FILE.py:CALLABLE or package.module:CALLABLE (e.g. my_models.py:Net)"


def split_factory(spec: str) -> tuple[str, str]:
    """(file or module, attribute path) of a factory spec; a spec without both parts is an error."""
    where, _, name = spec.rpartition(":")
    if not where or not name or not all(part.isidentifier() for part in name.split(".")):
        raise UserError(f"model factory {spec!r} is not of the form FILE.py:CALLABLE; {FACTORY_HELP}")
    return where, name


def is_file_factory(where: str) -> bool:
    return where.endswith(".py") or "/" in where


def canonical_factory(spec: str) -> str:
    """`spec` with its file made absolute (a run then rebuilds its model from any working directory)."""
    where, name = split_factory(spec)
    return f"{Path(where).expanduser().resolve()}:{name}" if is_file_factory(where) else spec


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def factory_source(spec: str) -> Path | None:
    """The source file a factory spec names or imports from (None when it cannot be found)."""
    where, _ = split_factory(spec)
    if is_file_factory(where):
        return Path(where)
    try:
        module_spec = importlib.util.find_spec(where)
    except (ImportError, ValueError):
        return None
    origin = module_spec.origin if module_spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _import_file(path: Path) -> Any:
    """The module of a Python file, imported under a name of its own with its folder importable (so the file
    may import its neighbours)."""
    if not path.is_file():
        raise UserError(f"model file {str(path)!r} does not exist; {FACTORY_HELP}")
    name = f"earlyreadout_user_{file_sha256(path)[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"model file {str(path)!r} cannot be imported as Python; {FACTORY_HELP}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  (user code may raise anything; it becomes one line)
        del sys.modules[name]
        raise UserError(f"model file {str(path)!r} failed to import ({type(e).__name__}: {e}); fix the file") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable a factory spec names."""
    where, name = split_factory(spec)
    if is_file_factory(where):
        module = _import_file(Path(where).expanduser())
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise UserError(f"cannot import module {where!r} of model factory {spec!r} ({e}); install it or "
                            f"{FACTORY_HELP}") from None
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            options = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n))]
            raise UserError(f"{where!r} has no {part!r}{did_you_mean(part, options)}; it defines: "
                            f"{', '.join(options[:12]) or '(nothing callable)'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"model factory {spec!r} is a {type(obj).__name__}, not a class or function")
    return obj


def call_factory(fn: Callable[..., Any], spec: str, n_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    """`fn(**kwargs)`, given the class count as `n_classes` / `num_classes` where it takes one."""
    kwargs = dict(kwargs)
    try:
        accepted = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        accepted = {}
    for key in ("n_classes", "num_classes"):
        if key in accepted and not ({"n_classes", "num_classes"} & set(kwargs)):
            kwargs[key] = n_classes
    try:
        model = fn(**kwargs)
    except Exception as e:  # noqa: BLE001  (user code may raise anything; it becomes one line)
        raise UserError(f"model factory {spec!r} raised {type(e).__name__}: {e}; fix it, or give its arguments as "
                        "model.kwargs={...}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model factory {spec!r} returned a {type(model).__name__}, not an nn.Module")
    return model


class FactorySpec:
    """A model built by the user's own code; its stages are a `stages` list it declares, else found on it."""

    options: ClassVar[dict[str, Param]] = {
        "factory": Param(None, f"the class or function building the model: {FACTORY_HELP}", nullable=True, kind=str),
        "kwargs": Param({}, "keyword arguments of the factory (the class count is passed as n_classes or "
                        "num_classes where it takes one)", kind=dict),
        "source_sha256": Param(None, "sha256 of the factory's source file when the run was written (a changed "
                               "file is warned about)", nullable=True, kind=str, affects_results=False),
    }
    stages: ClassVar[list[str]] = []

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, factory: str | None, kwargs: dict[str, Any],
              source_sha256: str | None = None) -> nn.Module:
        if factory is None:
            raise UserError(f"model 'factory' needs model.factory: {FACTORY_HELP}")
        source = factory_source(factory)
        if source_sha256 and source is not None and source.is_file() and file_sha256(source) != source_sha256:
            warnings.warn(f"{source} changed since this run was written (sha256 {source_sha256[:12]}... then); "
                          "its weights may not fit the model it now builds", stacklevel=2)
        return call_factory(load_factory(factory), factory, n_classes, kwargs)
