"""One batch job per model through the service, timed from accept_batch to the recorded result
(run by bench/batch/run.py with DATABASE_URL and CELERY_BROKER_URL set; workers are running).
Prints one JSON line: per model, seconds, logged rows and result lines."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.core.files import File  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402
from django.db.models import Sum  # noqa: E402

from serving import batch  # noqa: E402
from serving.models import BatchJob, Disposition, PredictionLog  # noqa: E402


def run(path: Path, model: str) -> dict[str, float | int]:
    from django.contrib.auth import get_user_model

    from core.roles import DATA_SCIENTISTS

    scientist = get_user_model().objects.filter(groups__name=DATA_SCIENTISTS).order_by("pk").first()
    with path.open("rb") as handle:
        started = time.perf_counter()
        job = batch.accept_batch(
            model_name=model,
            version_number=None,
            submitter=batch.Submitter(caller="bench", user=scientist, api_key=None),
            upload=File(handle, name=path.name),
        )
    accepted = time.perf_counter() - started
    while not BatchJob.objects.filter(pk=job.pk).exclude(result_sha256="").exists():
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    job.refresh_from_db()
    assert job.status == "completed", (job.status, job.reason)
    logged = PredictionLog.objects.filter(batch_job=job, outcome=Disposition.OK).aggregate(n=Sum("n_rows"))["n"]
    with default_storage.open(job.result_file, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1
    return {"seconds": seconds, "accepted_seconds": accepted, "logged_rows": logged, "result_rows": lines}


if __name__ == "__main__":
    path = Path(sys.argv[1])
    print(json.dumps({model: run(path, model) for model in sys.argv[2:]}))
