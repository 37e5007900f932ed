"""Deliberate erasure: before a risk officer destroys a data subject's keys, the
page names the model and how many of its logged decisions carry the subject's personal data,
and asks for a reason or ticket; the erasure itself is serving.erasure.erase_subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from serving import personal, subject_keys
from serving.models import PredictionLog, SubjectKey


@dataclass(frozen=True)
class ErasurePreview:
    model_name: str
    keys: int  # data keys to destroy (one per month the subject appears in)
    months: list[date]
    records: int  # logged requests holding the subject's personal values
    rows: int  # rows (decisions) among them

    @property
    def nothing_found(self) -> bool:
        return self.keys == 0


def _rows_with_keys(inputs: Any, business_keys: list[str], ids: set[int]) -> int:
    """How many rows of one record are sealed under one of the keys `ids`."""
    count = 0
    rows = inputs if isinstance(inputs, list) else []
    for i in range(max(len(rows), len(business_keys))):
        row = rows[i] if i < len(rows) else {}
        # (the key ids a stored row names, read as serving.personal reads them to decrypt)
        found = personal.key_ids([row], [business_keys[i]] if i < len(business_keys) else [])
        count += bool(found & ids)
    return count


def preview_erasure(*, model_name: str, subject: str) -> ErasurePreview:
    """What erasing the subject from the model's log would destroy: the live keys, and the
    records and rows of the months they cover that are sealed under them (read, not changed)."""
    keys = list(
        SubjectKey.objects.filter(
            model_name=model_name,
            subject_hash__in=subject_keys.subject_hashes(model_name, subject),
            erased_at__isnull=True,
        ).values_list("pk", "month")
    )
    ids = {pk for pk, _ in keys}
    months = sorted({m for _, m in keys})
    records = rows = 0
    for month in months:
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        end = (start + timedelta(days=32)).replace(day=1)
        candidates = PredictionLog.objects.filter(
            model_name=model_name, created_at__gte=start, created_at__lt=end
        ).only("inputs_json", "business_keys_json", "public_id")
        for record in candidates.iterator(chunk_size=500):
            n = _rows_with_keys(record.inputs, record.business_keys, ids)
            records += bool(n)
            rows += n
    return ErasurePreview(model_name, len(keys), months, records, rows)
