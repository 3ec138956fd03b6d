"""One small registry helper, used for every kind of pluggable thing.

A registry maps a name to an entry (a function or a class) plus a one-line description. Init
schemes, init scenarios, activations, agents and environments each get one instance::

    schemes = Registry("init scheme")

    @schemes.register("orthogonal", "orthogonal matrix scaled by the gain")
    def orthogonal(weight, gain, **_): ...

    schemes.get("orthogonl")  # RegistryError: unknown init scheme 'orthogonl'; did you mean ...

**Lazy entries.** An entry whose object lives in a heavy module (a torch network, an agent
class) can be *declared* by name instead: ``registry.declare(name, module, description)`` says
"importing ``module`` registers ``name``". A declared name counts as known everywhere a name is
checked (``name in registry``, :meth:`Registry.check`, :meth:`Registry.names`,
:meth:`Registry.listing`, the "did you mean" hints), so configs are validated without importing
the module; :meth:`Registry.get` and :meth:`Registry.entry` import it on first use. The module
then registers the real object as usual (``register``/``add``; the description may be left out,
the declared one is kept). Registering a declared name from anywhere else imports the declaring
module first, so it is a duplicate like any other (``override=True`` replaces it).

This module imports only the standard library.
"""

from __future__ import annotations

import difflib
import importlib
import sys
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


@dataclass(frozen=True)
class Declared:
    """A name whose entry ``module`` registers when it is imported."""

    name: str
    module: str
    description: str


class Registry(Generic[T]):
    """A named collection of entries, some of them declared lazily, with helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._declared: dict[str, Declared] = {}  # declared names not registered yet

    # --- registering ------------------------------------------------------------------------

    def declare(self, name: str, module: str, description: str) -> None:
        """Make ``name`` known now; its entry is registered by importing ``module`` on first
        use (:meth:`get`)."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries or name in self._declared:
            raise RegistryError(f"{self.kind} '{name}' is already registered")
        self._declared[name] = Declared(name, module, description)

    def register(
        self, name: str, description: str | None = None, *, override: bool = False
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``.

        The description defaults to the declared one (a lazily declared name), else to the
        first line of the object's docstring. Registering a name twice raises unless
        ``override=True``.
        """

        def decorator(obj: T) -> T:
            self.add(name, obj, description, override=override)
            return obj

        return decorator

    def add(self, name: str, obj: T, description: str | None = None, *, override: bool = False):
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        declared = self._declared.get(name)
        if declared is not None and declared.module not in sys.modules:
            # registered from elsewhere: let the declaring module register it first, so this is
            # a duplicate (or an override) exactly as if the module had been imported already
            self._load(declared)
            declared = self._declared.get(name)
        if name in self._entries and not override:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered "
                f"(by {_where(self._entries[name].obj)}); pass override=True to replace it"
            )
        if description is None and declared is not None:
            description = declared.description
        if description is None:
            doc = (getattr(obj, "__doc__", None) or "").strip()
            description = doc.splitlines()[0] if doc else ""
        self._declared.pop(name, None)
        self._entries[name] = Entry(name, obj, description)

    # --- looking up ---------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """The object of ``name``, importing its declaring module on first use."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        declared = self._declared.get(name) if isinstance(name, str) else None
        if declared is not None:
            self._load(declared)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(self.unknown_message(name)) from None

    def check(self, name: object) -> None:
        """RegistryError (the unknown-name message) unless ``name`` is registered or declared;
        imports nothing."""
        if name not in self:
            raise RegistryError(self.unknown_message(name))

    def description(self, name: str) -> str:
        """The one-line description of ``name``; imports nothing."""
        self.check(name)
        if name in self._entries:
            return self._entries[name].description
        return self._declared[name].description

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s object is registered (not only declared)."""
        return name in self._entries

    def declared_module(self, name: str) -> str | None:
        """The module a declared, not yet loaded name comes from (None otherwise)."""
        declared = self._declared.get(name)
        return declared.module if declared else None

    def unknown_message(self, name: object) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (known: {', '.join(known)})"

    def names(self) -> list[str]:
        """Every known name, registered or declared, sorted."""
        return sorted({*self._entries, *self._declared})

    def listing(self) -> list[tuple[str, str]]:
        """(name, description) of every known name, sorted; imports nothing (``sweep list``)."""
        return [(n, self.description(n)) for n in self.names()]

    def entries(self) -> list[Entry[T]]:
        """Every entry with its object (imports the modules of declared names)."""
        return [self.entry(n) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._declared

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _load(self, declared: Declared) -> None:
        importlib.import_module(declared.module)
        if (
            declared.name in self._declared
            and declared.module in sys.modules
            and not _importing(declared.module)
        ):
            raise RegistryError(
                f"{self.kind} '{declared.name}': importing {declared.module} did not register it"
            )


def _importing(module: str) -> bool:
    """Whether ``module`` is still being imported (its code has not finished running)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def suggest(name: str, options: list[str]) -> str:
    """'; did you mean X?' when a close match exists, else ''. A shortened name (``grace`` for
    ``grace_period``) is close whatever its edit distance."""
    close = [o for o in options if len(name) >= 3 and o.startswith(name)][:1]
    close = close or difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""
