"""Evidence rows proven by the audit chain. Every write of an evidence row (a decision, a
deployment, a check result, a policy, an outcome, ...) records, in the same transaction, an audit
event whose data carries the row's content hash under "evidence"; `latest_row_hashes` reads the
chain back and gives, for every row, the hash of its latest recorded state, which verification
compares with the row as it is now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models

from core import ledger
from core.canonical import sha256_json
from core.models import AuditEvent


def row_key(instance: models.Model) -> str:
    return f"{instance._meta.label_lower}:{instance.pk}"


def columns(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def row_values(instance: models.Model) -> dict[str, Any]:
    """Every concrete column of the row as the database returns it now (foreign keys as ids), so
    the hash recorded at the write is the one verification recomputes from the stored row."""
    model = type(instance)
    return model._default_manager.filter(pk=instance.pk).values(*columns(model)).get()


def content_hash(values: dict[str, Any], fields: Iterable[str] | None = None) -> str:
    """SHA-256 of the canonical JSON of the named columns (all of them by default)."""
    names = sorted(values) if fields is None else list(fields)
    return sha256_json({name: values.get(name) for name in names})


def hashed_fields(model: type[models.Model], values: dict[str, Any]) -> list[str]:
    """The columns a row's content hash covers: all of them but the operational counters its
    ledger class names (core.ledger)."""
    entry = ledger.entry_for(model)
    unhashed = set(entry.unhashed) if entry is not None else set()
    return sorted(name for name in values if name not in unhashed)


def evidence(*instances: models.Model) -> list[dict[str, Any]]:
    """What an audit event carries for the rows it records. The column names travel with the
    hash, so a column added to the table later does not make older rows fail verification."""
    items = []
    for instance in instances:
        values = row_values(instance)
        fields = hashed_fields(type(instance), values)
        items.append({"row": row_key(instance), "fields": fields, "sha256": content_hash(values, fields)})
    return items


@dataclass(frozen=True)
class Recorded:
    sha256: str
    fields: list[str]
    seq: int


def latest_row_hashes(events: Iterable[AuditEvent] | None = None) -> dict[str, Recorded]:
    """row key -> what the latest event that recorded the row says of it."""
    latest: dict[str, Recorded] = {}
    if events is None:
        events = AuditEvent.objects.filter(data__has_key="evidence").order_by("seq").iterator(chunk_size=2000)
    for event in events:
        items = event.data.get("evidence") if isinstance(event.data, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "row" in item and "sha256" in item:
                key = ledger.current_row_key(item["row"])
                latest[key] = Recorded(item["sha256"], list(item.get("fields") or []), event.seq)
    return latest


def differs(values: dict[str, Any], recorded: Recorded) -> bool:
    """Does a stored row (its column values) no longer say what its latest event recorded?"""
    return content_hash(values, recorded.fields) != recorded.sha256
