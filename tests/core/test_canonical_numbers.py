"""One canonical form for a hashed number: the writer (holding whatever Python type it built)
and the verifier (holding what the database hands back) must hash the same text."""

from __future__ import annotations

import decimal
import math
import uuid

import pytest
from django.utils import timezone

from core.canonical import canonical_json, canonical_number
from serving import log
from serving.models import PredictionLog
from serving.seals import first_forged_record


def text(value: object) -> str:
    return canonical_json({"n": canonical_number(value)})  # type: ignore[arg-type]


def test_zero_in_every_spelling_is_one_number() -> None:
    assert text(0) == text(0.0) == text(-0.0) == text(decimal.Decimal("0")) == text(decimal.Decimal("-0.0"))
    assert text(0) == '{"n":0.0}'
    assert math.copysign(1.0, canonical_number(-0.0)) == 1.0  # no negative zero left


def test_small_fractions_keep_their_shortest_round_trip_form() -> None:
    assert text(1e-7) == '{"n":1e-07}' == text(decimal.Decimal("0.0000001"))
    assert text(0.1) == '{"n":0.1}' and text(12.345) == '{"n":12.345}'
    assert float(text(1e-7)[5:-1]) == 1e-7


def test_an_integer_and_the_same_float_are_one_number() -> None:
    assert text(3) == text(3.0) == '{"n":3.0}'
    assert text(10**20) == text(1e20) == text(100000000000000000000.0) == '{"n":1e+20}'


def test_an_integer_beyond_2_53_is_the_double_the_column_keeps() -> None:
    # A double column cannot hold 2**53 + 1: the writer must hash what the verifier will read.
    assert text(2**53 + 1) == text(float(2**53 + 1)) == text(2**53) == '{"n":9007199254740992.0}'
    assert text(2**53 + 2) != text(2**53)  # representable neighbours stay apart


def test_what_is_not_a_finite_number_is_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf, 10**400):
        with pytest.raises(ValueError, match="finite"):
            canonical_number(bad)
    for bad in ("1", None, True):
        with pytest.raises(TypeError, match="not a number"):
            canonical_number(bad)  # type: ignore[arg-type]


VALUES = [0, 0.0, -0.0, 1e-7, 2**53 + 1, 10**20, 3, 12.345]


@pytest.mark.django_db
def test_a_record_hashed_as_written_verifies_as_read_back_on_this_database() -> None:
    """Each latency as a writer may hold it (an int default, a float, negative zero, a large
    integer), written in bulk as shadow replays and batch chunks are: its MAC must match the
    row the database gives back (SQLite REAL or PostgreSQL double precision)."""
    records = []
    for i, latency in enumerate(VALUES):
        records.append(
            log.sealed_form(
                PredictionLog(
                    public_id=uuid.uuid4(),
                    created_at=timezone.now(),
                    model_name="m",
                    caller="test",
                    request_id=f"r{i}",
                    protocol="v1",
                    outcome="ok",
                    latency_ms=latency,
                )
            )
        )
    log.write_many(records)
    rows = PredictionLog.objects.order_by("pk").values_list(*log.LEAF_FIELDS, "leaf_hash")
    width = len(log.LEAF_FIELDS)
    for row, record in zip(rows, records, strict=True):
        assert log.leaf_of(row[:width]).hex() == row[width] == record.leaf_hash, row
    assert first_forged_record() == ""
