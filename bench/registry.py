"""One small registry type for tasks, models, backends and loaders, with did-you-mean errors."""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from bench.errors import InputError, unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Named items of one kind. Lookups of unknown names raise ``InputError`` with suggestions."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise InputError(f"{self.kind} {name!r} is defined twice")
        clash = next((n for n in self._items if n.casefold() == name.casefold()), None)
        if clash is not None:  # their files would be one file on a case-insensitive file system
            raise InputError(f"{self.kind} names {clash!r} and {name!r} differ only in case; rename one")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
