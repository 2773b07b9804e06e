"""One generic name -> object registry, used for methods, datasets, models and readout heads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from earlyreadout.errors import UserError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; unknown names list the options, duplicate names are an error."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint  # what else names an entry, said after the list of names
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering `obj` under `name`."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                f"available: {', '.join(sorted(self._items))}{self.hint}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
