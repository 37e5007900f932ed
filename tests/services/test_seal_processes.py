"""Seals verified in forked processes on PostgreSQL (serving.seal_processes): the verdict, and the
record it names when something was changed or forged, are those of verifying the seals one after
the other, and the processes really ran."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bench import logfill
from serving import seals
from serving.models import PredictionLog, PredictionSeal
from tests.conftest import tamper
from tests.services.test_log_partitions import template  # noqa: F401 (a fixture)

SEALS = 4


@pytest.fixture
def sealed(committed_db: None, production: Any, template: PredictionLog) -> list[PredictionLog]:  # noqa: F811
    logfill.fill_log(
        production, template, first=0, last=39, start=timezone.now() - timedelta(hours=2), span=timedelta(hours=1)
    )
    records = list(PredictionLog.objects.order_by("pk"))
    seals.seal_all(batch_size=len(records) // SEALS + 1)
    assert PredictionSeal.objects.count() == SEALS
    return records


def verdicts(settings: Any, caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    """The message of verifying one by one, then in two processes (which must have run)."""
    settings.VERIFY_PROCESSES = 1
    one = seals.verify_seals()
    settings.VERIFY_PROCESSES, settings.VERIFY_RECORDS_PER_PROCESS = 2, 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="serving.seal_processes"):
        two = seals.verify_seals()
    assert f"{SEALS} seals judged by 2 processes" in caplog.text
    assert (one.ok, one.seals_checked) == (two.ok, two.seals_checked)
    return one.message, two.message


def test_processes_verify_as_one_process_does(sealed, settings, caplog):
    one, two = verdicts(settings, caplog)
    assert one == two == f"{SEALS} prediction seals verified, every record's MAC checked"


def test_a_changed_record_in_a_later_seal_is_named_as_one_process_names_it(sealed, settings, caplog):
    victim = sealed[-3]
    tamper(PredictionLog, {"pk": victim.pk}, caller="someone-else")
    one, two = verdicts(settings, caplog)
    assert one == two
    assert str(victim.public_id) in two and "no longer match the root" in two


def test_a_forged_mac_is_named_as_one_process_names_it(sealed, settings, caplog):
    victim = sealed[len(sealed) // 2]
    tamper(PredictionLog, {"pk": victim.pk}, mac="0" * 64)
    one, two = verdicts(settings, caplog)
    assert one == two == f"record {victim.public_id} does not match its MAC: it was changed or forged in the database"
