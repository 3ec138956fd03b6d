"""One small registry helper, used for every kind of pluggable thing.

A registry maps a name to an entry (a function or a class) plus a one-line description. Init
schemes, init scenarios, activations, agents and environments each get one instance::

    schemes = Registry("init scheme")

    @schemes.register("orthogonal", "orthogonal matrix scaled by the gain")
    def orthogonal(weight, gain, **_): ...

    schemes.get("orthogonl")  # RegistryError: unknown init scheme 'orthogonl'; did you mean ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate registry name. ``str(err)`` is a one-line, user-facing message."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str


class Registry(Generic[T]):
    """A named collection of entries with helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, description: str | None = None, *, override: bool = False
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``.

        The description defaults to the first line of the object's docstring. Registering a name
        twice raises unless ``override=True``.
        """

        def decorator(obj: T) -> T:
            self.add(name, obj, description, override=override)
            return obj

        return decorator

    def add(self, name: str, obj: T, description: str | None = None, *, override: bool = False):
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries and not override:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered "
                f"(by {_where(self._entries[name].obj)}); pass override=True to replace it"
            )
        if description is None:
            doc = (getattr(obj, "__doc__", None) or "").strip()
            description = doc.splitlines()[0] if doc else ""
        self._entries[name] = Entry(name, obj, description)

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (known: {', '.join(known)})"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def suggest(name: str, options: list[str]) -> str:
    """'; did you mean X?' when a close match exists, else ''."""
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""
