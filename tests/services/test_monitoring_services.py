"""Folding a large seal on PostgreSQL: counted by forked processes, each over its share of the
records, with exactly the counts of one process and of an independent count of the rows sent."""

from __future__ import annotations

from typing import Any

from governance import profile
from lifecycle import demo_data
from monitoring import counts as monitoring_counts
from monitoring import reference as monitoring_reference
from monitoring import services
from monitoring.models import FoldedSeal, HourlyCounts
from serving.models import PredictionLog
from serving.seals import seal_predictions
from tests.services.conftest import wait_for

FEATURES = demo_data.NUMERIC + demo_data.CATEGORICAL


def hourly(version: Any) -> dict[str, Any]:
    return {str(b.hour): (b.rows, b.counts) for b in HourlyCounts.objects.filter(version=version)}


def test_a_large_seal_is_counted_by_forked_processes_exactly_as_by_one(
    committed_db, production, keyed, german, settings
):
    sent = german[1][FEATURES].to_dict(orient="records")
    assert len(sent) == 300
    for i in range(0, len(sent), 25):
        response = keyed.post("/api/v1/models/credit-risk/predict", {"instances": sent[i : i + 25]}, format="json")
        assert response.status_code == 200, response.content
    seal_predictions()
    seal_id = PredictionLog.objects.filter(version=production).values_list("seal_id", flat=True).first()
    assert seal_id is not None

    settings.MONITOR_FOLD_PROCESSES, settings.MONITOR_FOLD_ROWS_PER_PROCESS = 2, 100
    assert monitoring_counts.fold_parts(seal_id) == 2  # the forked path is the one taken
    assert services.accumulate_sealed() == 300
    forked = hourly(production)
    assert FoldedSeal.objects.get(seal_id=seal_id).records == 12

    FoldedSeal.objects.all().delete()
    HourlyCounts.objects.all().delete()
    settings.MONITOR_FOLD_PROCESSES = 1
    assert monitoring_counts.fold_parts(seal_id) == 1
    assert services.accumulate_sealed() == 300
    assert hourly(production) == forked

    # and both equal an independent count of the rows sent, from the reference's own bins
    reference = monitoring_reference.reference_of(production)
    total_rows = sum(rows for rows, _ in forked.values())
    assert total_rows == 300
    summed: dict[str, list[int]] = {}
    for _, counts in forked.values():
        for name, values in counts.items():
            summed[name] = [a + b for a, b in zip(summed.get(name, [0] * len(values)), values, strict=True)]
    for name in FEATURES:
        entry = reference.profile["features"][name]
        values = [row[name] for row in sent]
        if entry["kind"] == "numeric":
            expected = profile.count_numeric(profile.numeric_values(values), entry["edges"])
        else:
            expected = profile.count_categorical(values, entry["categories"])
        assert summed[name] == expected, name
    # a second fold of the same seal adds nothing
    assert services.accumulate_sealed() == 0


def test_the_real_workers_monitor_task_folds_a_seal_in_forked_processes(
    committed_db, celery_worker_process, production, keyed, german
):
    """A Celery prefork child is a daemon process: the fold's children are forked with billiard,
    which allows them; the counts equal a one-process fold of the same seal."""
    from monitoring.tasks import monitor_task

    sent = german[1][FEATURES].to_dict(orient="records")
    for i in range(0, len(sent), 25):
        response = keyed.post("/api/v1/models/credit-risk/predict", {"instances": sent[i : i + 25]}, format="json")
        assert response.status_code == 200, response.content
    seal_predictions()
    monitor_task.delay()
    wait_for(lambda: FoldedSeal.objects.exists(), 120, "the worker's fold")
    assert FoldedSeal.objects.get().rows == 300
    worker_counts = hourly(production)
    log = celery_worker_process.read_text()
    assert "folded by 2 processes (12 records)" in log and "fold process" not in log  # forked; none failed
    FoldedSeal.objects.all().delete()
    HourlyCounts.objects.all().delete()
    assert services.accumulate_sealed() == 300  # here, in one process (the test settings)
    assert hourly(production) == worker_counts
