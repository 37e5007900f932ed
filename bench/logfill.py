"""A prediction log of many records, written fast and real: the fill that `make bench-audit`,
`make bench-decisions` and the reliability suite (tests/services/test_reliability.py) share.

Each record is built as serving.log builds a bulk record (a batch chunk, a shadow replay):
`serving.log.sealed_form` gives it its Merkle leaf and its MAC under the application's
LOG_MAC_KEY, a version that declares personal data has its rows (and business keys, and
inline explanations) sealed by `serving.personal.protect` under its subjects' keys, bound to the
record, as serving does, and `serving.log.write_many` writes a chunk of them with PostgreSQL COPY, every
column the model has (`source` and `mac` included) in the application's own form. Sealing is the
application's too (`seal`: serving.seals.seal_predictions until nothing is left), so verification,
reports and proofs read these records exactly as they read served ones."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

CHUNK = 50_000
WARM = 5_000  # subjects whose keys are made in one statement (6 parameters each, under 65,535)


def _warm_subject_keys(model_name: str, business_keys: list[str]) -> None:
    """Make the keys of these subjects (each business key its own subject) in one statement, as a
    batch job's chunk does (serving.subject_keys.write_keys), so that protect() finds them remembered
    instead of making one per record."""
    from django.utils import timezone

    from serving import subject_keys
    from serving.log import keyed_hexdigests

    hashes = keyed_hexdigests([f"business-key\x1f{k}".encode() for k in business_keys])
    subject_keys.write_keys(model_name, set(hashes), subject_keys.month_of(timezone.now()))


def fill_log(
    version: Any,
    template: Any,
    *,
    first: int,
    last: int,
    start: datetime,
    span: timedelta,
    total: int | None = None,
    invalid_share: float = 0.0,
    business_key: Callable[[int], str] | None = None,
    seed: int = 7,
) -> float:
    """Write records first..last-1 of `version` over [start, start + span) (record i at
    start + i * span / total), shaped like `template` (a logged record of that version): its
    inputs, outputs, row count and engine. A share `invalid_share` of them are refusals
    (outcome "invalid", no outputs). With `business_key`, record i carries business key
    business_key(i) for its one row, and its PredictionKey row is written with it. Returns the
    seconds spent. Commits nothing itself: callers outside a transaction (autocommit) get each
    COPY committed as it ends."""
    from django.db import connection

    from serving import personal
    from serving.log import dump_json, index_key, sealed_form, write_many
    from serving.models import PredictionLog

    _make_months(start, start + span)
    total = total or last
    step = span / total
    rng = random.Random(seed + first)
    refused = "invalid_input: Input does not match the model's schema: row 0: age"
    model_name = template.model_name
    sealing = personal.declares_personal(version)
    # the template's rows and explanations as the client sent them (opened when sealed)
    rows = personal.reveal_record(template)[0] if sealing else template.inputs
    outputs = personal.reveal_outputs(template.public_id, template.outputs) if sealing else template.outputs
    explanations = outputs.pop("explanations", None) if sealing else None
    plain_inputs, outputs_json = dump_json(rows), dump_json(outputs)
    started = time.perf_counter()
    for offset in range(first, last, CHUNK):
        end = min(last, offset + CHUNK)
        records = []
        keys = []
        for i in range(offset, end):
            if sealing and business_key is not None and (i - offset) % WARM == 0:
                _warm_subject_keys(model_name, [business_key(k) for k in range(i, min(end, i + WARM))])
            ok = invalid_share <= 0 or rng.random() >= invalid_share
            public_id = uuid.uuid4()
            given = [business_key(i)] if business_key is not None else None
            inputs_json, record_outputs, stored_keys = plain_inputs, outputs_json, given
            if sealing and ok:
                copies = [dict(e) for e in explanations] if explanations is not None else None
                stored, stored_keys = personal.protect(version, model_name, rows, given, public_id, explanations=copies)
                inputs_json = dump_json(stored)
                if copies is not None:
                    record_outputs = dump_json({**outputs, "explanations": copies})
            record = PredictionLog(
                public_id=public_id,
                created_at=start + i * step,
                model_name=model_name,
                version=version,
                version_number=version.version,
                caller="api-key:scoring",
                request_id=f"req-{i}",
                protocol="v1",
                outcome="ok" if ok else "invalid",
                reason="" if ok else refused,
                n_rows=len(rows) if ok else 0,
                # a refusal's rows are logged with their personal values redacted
                inputs_json=inputs_json if ok else dump_json(personal.redact(version, rows)),
                outputs_json=record_outputs if ok else "{}",
                engine=template.engine if ok else "",
                latency_ms=round(rng.lognormvariate(0.3, 0.4), 3),
            )
            if stored_keys:
                record.business_keys_json = dump_json(stored_keys)
                keys += [(public_id, row, index_key(k)[:200], record.created_at) for row, k in enumerate(stored_keys)]
            records.append(sealed_form(record))
        write_many(records)
        if keys:
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy("COPY serving_predictionkey (record_id, row, key, created_at) FROM STDIN") as copy,
            ):
                for item in keys:
                    copy.write_row(item)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE serving_predictionlog")
        if business_key is not None:
            cursor.execute("ANALYZE serving_predictionkey")
    return time.perf_counter() - started


def _make_months(start: datetime, end: datetime) -> None:
    """On a partitioned log (PostgreSQL), the months the records fall in get their partitions
    first, as a restore would make them (serving.partitions): past months are not made ahead."""
    from datetime import date

    from serving import partitions

    if not partitions.is_partitioned():
        return
    month = date(start.year, start.month, 1)
    while partitions.month_start(month) < end:
        partitions.add_partition(month)
        month = partitions.next_month(month)


def seal(batch_size: int | None = None) -> float:
    """Seal every unsealed record as the application does (its seal task's own function), then
    ANALYZE the log on PostgreSQL, as autovacuum soon does after so many rows in a running
    database: without statistics the planner takes the freshly filled log for unsealed and scans
    it whole where the seal index finds nothing. Returns the seconds spent sealing."""
    from django.db import connection

    from serving.seals import seal_predictions

    started = time.perf_counter()
    while seal_predictions(batch_size=batch_size) is not None:
        pass
    seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE serving_predictionlog")
    return seconds


def demo_template(version: Any, request_id: str | None = None) -> Any:
    """A record the demo logged for `version` (request_id's, or any answered one)."""
    from serving.models import PredictionLog

    records = PredictionLog.objects.filter(version=version, outcome="ok")
    if request_id:
        records = records.filter(request_id=request_id)
    template = records.order_by("pk").first()
    assert template is not None, f"no answered record of {version} to copy"
    return template


def business_key_of(i: int) -> str:
    return f"APP-{i:08d}"
