"""The demo's integrations. The webhook: an endpoint subscribed to every event type, and one
delivery of the demo's latest deployment, received by a throwaway listener in this process (so
the admin shows a delivered webhook with its signed attempt). Demo only: it backdates the
endpoint's start. The MLflow import: the model directory shipped in integrations/demo_mlflow
(made by MLflow 3 with skops), imported as a draft through the same service as the command."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from core import audit
from core.models import AuditEvent
from integrations import events, outbox, webhooks
from integrations.mlflow_import import Source, import_mlflow_model
from integrations.models import MlflowImport, WebhookEndpoint
from lifecycle.submission import DatasetChoice

# The MLflow model and the German credit split it was trained on (first 700 rows) and is
# evaluated on (the other 300), as files a new user can pass to `import_mlflow_model` too.
DEMO_MLFLOW = Path(__file__).resolve().parent / "demo_mlflow"
MLFLOW_DEMO_MODEL = "credit-mlflow"


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def seed_webhook_demo(*, actor: Any) -> str:
    """Create the demo endpoint and deliver the latest mapped event to it; returns a summary."""
    previous = settings.WEBHOOK_ALLOW_PRIVATE
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the demo receiver listens on 127.0.0.1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/demo-ci-hook"
        endpoint, _ = webhooks.create_endpoint(
            actor=actor, name="demo CI pipeline", url=url, event_types=events.ALL_EVENT_TYPES
        )
        latest = AuditEvent.objects.filter(action__in=events.MAPPED_ACTIONS).order_by("-seq").first()
        if latest is not None:
            with transaction.atomic():
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(start_seq=latest.seq - 1)
                # (the replay start is part of the endpoint's governed state: recorded like any change)
                audit.record(
                    webhooks.ENDPOINT_CHANGED, actor=actor, target=endpoint, data={"start_seq": latest.seq - 1}
                )
                outbox.OutboxCursor.objects.update_or_create(pk=1, defaults={"last_seq": latest.seq - 1})
        delivered = [webhooks.attempt_delivery(pk) for pk in outbox.dispatch_events()]
    finally:
        server.shutdown()
        server.server_close()
        settings.WEBHOOK_ALLOW_PRIVATE = previous
    ok = sum(1 for a in delivered if a is not None and a.succeeded)
    return f"webhook endpoint {endpoint.name!r}: {ok} of {len(delivered)} deliveries accepted"


def _csv(name: str) -> DatasetChoice:
    return DatasetChoice(upload=SimpleUploadedFile(name, (DEMO_MLFLOW / name).read_bytes(), content_type="text/csv"))


def seed_mlflow_demo(*, actor: Any) -> str:
    """Import the shipped MLflow model as a draft of `credit-mlflow` created by `actor` (a data
    scientist); does nothing if the demo's import is already there. Returns a summary."""
    done = MlflowImport.objects.filter(version__registered_model__name=MLFLOW_DEMO_MODEL).first()
    if done is not None:
        return f"MLflow import already loaded: {done.version}"
    version = import_mlflow_model(
        actor=actor,
        source=Source(directory=DEMO_MLFLOW / "credit-skops"),
        model_name=MLFLOW_DEMO_MODEL,
        training=_csv("german-credit-train.csv"),
        evaluation=_csv("german-credit-eval.csv"),
        label_column="risk",
        sensitive_features=["sex", "age_group"],
        title="Consumer credit risk (trained in MLflow)",
        risk_tier="medium",
        source_path="integrations/demo_mlflow/credit-skops",
    )
    return f"Imported {version} from MLflow as a draft (run {version.mlflow_import.run_id})."
