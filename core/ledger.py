"""The ledger: every database table is in exactly one class, declared once, in one shape.

- evidence: written once with an audit event carrying its content hash, never changed;
- governed: changed only by a service function, each change an audit event carrying the row's
  new content hash (core.audit.record adds it for the event's target);
- operational: needs no proof, for the reason given (sessions, caches, progress counters).

A model declares its class where it is defined, with one of the decorators below; tables of
third-party apps are classed in core.apps. Verification (compliance.evidence), the database
roles and the triggers all read this one registry, and a system check fails for a model
without a class (docs/ledger.md)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from django.apps import apps
from django.core import checks
from django.db import models

M = TypeVar("M", bound=type[models.Model])


# Tables that moved to another app: audit events written before the move name their rows by the
# old label, and verification reads them under the new one (the table and its ids are the same).
MOVED = {"integrations.mlflowimport": "lifecycle.mlflowimport"}


def current_row_key(key: str) -> str:
    """A recorded row key ("app.model:id") under its table's label of today."""
    label, sep, rest = key.partition(":")
    return MOVED.get(label, label) + sep + rest


class TableClass(enum.StrEnum):
    EVIDENCE = "evidence"
    GOVERNED = "governed"
    OPERATIONAL = "operational"


class Proof(enum.StrEnum):
    # the row's content hash is carried by the audit event that wrote (or changed) it
    EVENT = "event"
    # too many rows to chain one by one: sealed into Merkle trees whose roots are audit events
    SEAL = "seal"
    # the audit chain itself: each event hashes the one before it
    CHAIN = "chain"


@dataclass(frozen=True)
class Entry:
    model: type[models.Model]
    table_class: TableClass
    reason: str = ""
    proof: Proof = Proof.EVENT
    # which rows are proven (e.g. a check only once finished); all rows by default
    which: Callable[[], models.Q] | None = None
    # columns that change without an event (operational counters): left out of the content hash
    unhashed: tuple[str, ...] = ()
    # what the runtime database role may do on the table (compliance.db_roles)
    runtime: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def proven(self) -> bool:
        return self.table_class is not TableClass.OPERATIONAL and self.proof is Proof.EVENT

    def rows(self) -> models.Q:
        return self.which() if self.which is not None else models.Q()


_registry: dict[str, Entry] = {}


def _add(entry: Entry) -> None:
    previous = _registry.get(entry.label)
    if previous is not None and previous.table_class is not entry.table_class:
        raise RuntimeError(f"{entry.label} is classed twice: {previous.table_class} and {entry.table_class}")
    _registry[entry.label] = entry


def evidence(
    *,
    which: Callable[[], models.Q] | None = None,
    proof: Proof = Proof.EVENT,
    runtime: tuple[str, ...] = ("SELECT", "INSERT"),
    reason: str = "",
) -> Callable[[M], M]:
    """Written once with its audit event; the runtime role may not UPDATE or DELETE it unless
    `runtime` says so (a check row is written queued and finished once)."""

    def mark(model: M) -> M:
        _add(Entry(model, TableClass.EVIDENCE, reason, proof, which, (), runtime))
        return model

    return mark


def governed(
    *, unhashed: tuple[str, ...] = (), runtime: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE")
) -> Callable[[M], M]:
    """Changed only by a service function whose audit event carries the row's new hash."""

    def mark(model: M) -> M:
        _add(Entry(model, TableClass.GOVERNED, "", Proof.EVENT, None, unhashed, runtime))
        return model

    return mark


def operational(reason: str) -> Callable[[M], M]:
    """Needs no proof, for the reason given."""

    def mark(model: M) -> M:
        _add(Entry(model, TableClass.OPERATIONAL, reason))
        return model

    return mark


def classify(model: type[models.Model], table_class: TableClass, reason: str, **options: object) -> None:
    """Class a model defined elsewhere (a third-party app's)."""
    _add(Entry(model, table_class, reason, **options))  # type: ignore[arg-type]


def entry_for(model: type[models.Model] | models.Model) -> Entry | None:
    return _registry.get(model._meta.label_lower)


def entries() -> list[Entry]:
    return sorted(_registry.values(), key=lambda e: e.label)


def proven_entries() -> list[Entry]:
    """Tables whose rows verification compares with the chain, one by one."""
    return [e for e in entries() if e.proven]


def unclassified() -> list[str]:
    """Installed models (tables of their own) that no declaration classes."""
    return sorted(
        m._meta.label_lower
        for m in apps.get_models()
        if m._meta.label_lower not in _registry and m._meta.managed and not m._meta.proxy
    )


@checks.register(checks.Tags.models)
def check_every_table_classed(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"{label} has no ledger class",
            hint="Declare it with core.ledger.evidence, governed or operational (docs/ledger.md).",
            id="core.E001",
        )
        for label in unclassified()
    ]
