"""`manage.py seal_predictions` (docs/design.md): every unsealed record sealed now, by the function
beat's task runs, and how many records and seals it made."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core import audit
from core.models import AuditEvent
from serving.models import PredictionLog, PredictionSeal
from serving.seals import verify_seals
from serving.tasks import seal_predictions_task
from tests.serving.test_seals import serve_some

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("seal_predictions", *args, stdout=out)
    return out.getvalue().strip()


def test_seal_predictions_seals_every_unsealed_record_and_says_how_many(keyed, production, german):
    serve_some(keyed, german, 5)
    assert PredictionLog.objects.filter(seal__isnull=True).count() == 5
    assert run("--batch-size=2") == "Sealed 5 prediction record(s) in 3 seal(s)."
    assert not PredictionLog.objects.filter(seal__isnull=True).exists()
    assert list(PredictionSeal.objects.order_by("pk").values_list("tree_size", flat=True)) == [2, 2, 1]
    assert AuditEvent.objects.filter(action=audit.PREDICTIONS_SEALED).count() == 3  # each root in the audit trail
    assert verify_seals().ok
    assert run() == "Nothing to seal: every prediction record is sealed."
    assert PredictionSeal.objects.count() == 3


def test_without_a_batch_size_one_seal_takes_up_to_seal_batch_size(keyed, production, german, settings):
    serve_some(keyed, german, 4)
    settings.SEAL_BATCH_SIZE = 3
    assert run() == "Sealed 4 prediction record(s) in 2 seal(s)."
    serve_some(keyed, german, 2)
    assert seal_predictions_task() == 2  # beat's task: the same function, the records it sealed
    assert not PredictionLog.objects.filter(seal__isnull=True).exists()


def test_a_batch_size_below_one_is_refused(production):
    with pytest.raises(CommandError, match="--batch-size must be a positive number"):
        run("--batch-size=0")
    assert not PredictionSeal.objects.exists()
