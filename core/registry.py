"""Names looked up at run time, all in one shape (core.ledger's): a provider is registered where it
is defined, a consumer declares the name it will ask for where it asks, and one lookup answers.

A lower layer asks for work a higher one provides without importing it (a job the workflow sends
that governance.tasks runs; the monitoring snapshot a recertification freezes). The name is the
only link, so a name asked for that nobody provides would fail only when first used, in a request
or a worker: the system check below fails for it at start-up instead (core.E003)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from django.core import checks

P = TypeVar("P")

_registries: list[Registry[object]] = []


class Registry(Generic[P]):
    """Providers of one kind (a job's sender, a snapshot's taker), by name."""

    def __init__(self, what: str, provider: str, hint: str) -> None:
        self.what = what  # what a name names ("job")
        self.provider = provider  # what provides one ("task")
        self.hint = hint  # how to provide one
        self._provided: dict[str, P] = {}
        self._wanted: dict[str, str] = {}  # name -> the module that asks for it
        _registries.append(self)  # type: ignore[arg-type]

    def want(self, name: str, where: str) -> str:
        """Declare, at import time where it is used, that `name` will be asked for; returns the
        name (kept as a module constant by the consumer)."""
        self._wanted.setdefault(name, where)
        return name

    def provide(self, name: str, provider: P) -> P:
        """Register `provider` for `name` (a later registration replaces an earlier one)."""
        self._provided[name] = provider
        return provider

    def provides(self, name: str) -> Callable[[P], P]:
        """The decorator form of provide(), at the provider's definition."""

        def mark(provider: P) -> P:
            return self.provide(name, provider)

        return mark

    def __contains__(self, name: str) -> bool:
        return name in self._provided

    def find(self, name: str) -> P | None:
        return self._provided.get(name)

    def get(self, name: str) -> P:
        """The one lookup: the provider of `name`, or a loud error naming what is missing."""
        provider = self._provided.get(name)
        if provider is None:
            raise RuntimeError(self.missing_message(name))
        return provider

    def missing_message(self, name: str) -> str:
        return f"no {self.provider} is registered for the {self.what} {name!r} ({self.hint})"

    def missing(self) -> list[tuple[str, str]]:
        """(name, where it is asked for) for every name asked for that nobody provides."""
        return sorted((name, where) for name, where in self._wanted.items() if name not in self._provided)


def registries() -> list[Registry[object]]:
    return list(_registries)


@checks.register()
def check_every_name_provided(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"the {registry.what} {name!r} is asked for by {where} but no {registry.provider} provides it",
            hint=registry.hint,
            id="core.E003",
        )
        for registry in registries()
        for name, where in registry.missing()
    ]
