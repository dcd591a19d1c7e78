"""One registry type for every kind of named thing: data sources, backbones, objectives, tasks.

Entries are registered by decorator or call; a bad name fails with the close matches and the
full list, so a typo never silently picks another entry.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from graphssl.core.errors import ConfigError

T = TypeVar("T")


def normalise(name: str) -> str:
    """The key a name is stored under: lower case, ``-`` and ``_`` alike."""
    return str(name).strip().lower().replace("_", "-")


class Registry(Generic[T]):
    """Named entries of one kind.

    >>> BACKBONES = Registry("backbone")
    >>> @BACKBONES.register("gin")
    ... class GIN: ...
    >>> BACKBONES.get("GIN") is GIN
    True
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint  # what else a user can do, appended to the unknown-name error
        self._entries: dict[str, T] = {}
        self._names: dict[str, str] = {}  # key -> the name as registered

    def register(self, name: str, entry: T | None = None, *, replace: bool = False) -> Callable[[T], T] | T:
        """``registry.register(name, entry)``, or ``@registry.register(name)`` as a decorator.

        Registering a taken name raises unless ``replace=True``.
        """

        def add(value: T) -> T:
            key = normalise(name)
            if key in self._entries and not replace and self._entries[key] is not value:
                raise ConfigError(f"{self.kind} '{name}' is already registered; pass replace=True to replace it")
            self._entries[key] = value
            self._names[key] = name
            return value

        return add if entry is None else add(entry)

    def get(self, name: str) -> T:
        """The entry called ``name``; a :class:`ConfigError` naming the close matches otherwise."""
        key = normalise(name)
        if key not in self._entries:
            raise self.unknown(name)
        return self._entries[key]

    def unknown(self, name: object) -> ConfigError:
        names = self.names()
        close = difflib.get_close_matches(normalise(str(name)), list(self._entries), n=3)
        hint = f" Did you mean {', '.join(repr(self._names[c]) for c in close)}?" if close else ""
        extra = f" {self.hint}" if self.hint else ""
        return ConfigError(f"unknown {self.kind} '{name}'.{hint} Registered: {', '.join(names)}.{extra}")

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._names.values())

    def items(self) -> Iterator[tuple[str, T]]:
        for key in sorted(self._entries):
            yield self._names[key], self._entries[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalise(name) in self._entries

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
