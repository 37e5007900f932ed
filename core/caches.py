"""Every cache a process keeps, in one inventory: each module registers its caches where it
defines them (at import: a module never imported holds nothing to clear), and clear_all()
empties them all (tests between databases that reuse ids, a change of keys in the settings).

A cache here is what a process remembers so as not to ask again: loaded models, resolved
versions, accepted client keys, subject keys, keys read from the settings, compiled statements.
What may be stale in it is said where it is defined; the serving path's write re-checks in the
same statement whatever an answer depends on (serving.log)."""

from __future__ import annotations

from collections.abc import Callable

_inventory: dict[str, Callable[[], object]] = {}


def register(name: str, clear: Callable[[], object]) -> Callable[[], object]:
    """Add a cache to the inventory under a dotted name (its module, then what it holds);
    `clear` empties it. Returns `clear`, so a module may keep it as its own forget function."""
    _inventory[name] = clear
    return clear


def inventory() -> list[str]:
    """The names of the caches this process has, sorted."""
    return sorted(_inventory)


def clear_all() -> None:
    """Empty every cache of this process."""
    for clear in list(_inventory.values()):
        clear()
