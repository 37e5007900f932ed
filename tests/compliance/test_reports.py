"""Compliance reports rendered on real data and read back: pypdf for the text and the embedded
evidence, poppler's pdftotext for an independent reading of the same bytes."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import subprocess
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from pypdf import PdfReader

from compliance import services
from compliance.pdf_render import RenderError, render_pdf, render_pdf_inline
from core import audit
from core.models import AuditEvent
from governance import workflow
from governance.models import CheckRun
from governance.policies import active_policy, update_policy
from lifecycle.models import ModelCard
from tests.conftest import tamper
from tests.governance.conftest import LONG_JUSTIFICATION
from tests.ledger import triggers_dropped


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages).split())


def poppler_text(pdf: bytes) -> str:
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return " ".join(out.decode().split())


def evidence_of(pdf: bytes) -> dict[str, Any]:
    attachments = PdfReader(io.BytesIO(pdf)).attachments
    assert list(attachments) == ["evidence.json"]
    return json.loads(attachments["evidence.json"][0])


def xmp_of(pdf: bytes) -> str:
    root = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    return root["/Metadata"].get_object().get_data().decode()


def test_version_report_reads_back_with_people_justification_fairness_and_verification(
    served, auditor, api_client, data_scientist, risk_officer
) -> None:
    name, number = served.registered_model.name, served.version
    api_client.force_authenticate(auditor)
    response = api_client.get(f"/api/v1/models/{name}/versions/{number}/report.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    sha = hashlib.sha256(pdf).hexdigest()
    assert response["X-Report-SHA256"] == sha
    event = AuditEvent.objects.filter(action=audit.REPORT_GENERATED).latest("seq")
    assert event.data["sha256"] == sha and event.actor_username == auditor.username

    api = api_client.get(f"/api/v1/models/{name}/versions/{number}/").json()
    fairness = next(c for c in api["checks"] if c["kind"] == "fairness")
    numbers = [
        f"{value:.6f}" for f in fairness["metrics"]["features"] for value in f["headline"].values() if value is not None
    ]
    assert numbers
    for text in (pdf_text(pdf), poppler_text(pdf)):
        assert f"Compliance report: {name} version {number}" in text
        assert data_scientist.username in text
        assert risk_officer.username in text
        # The long justification wraps over several lines but is all there.
        assert " ".join(LONG_JUSTIFICATION.split()) in text
        for n in numbers:
            assert n in text
        assert "Verification PASSED" in text
        assert "events verified, chain intact" in text

    evidence = evidence_of(pdf)
    assert evidence["version"] == api
    assert evidence["serving"]["rows_predicted"] == 15
    assert evidence["serving"]["by_outcome"]["invalid"]["requests"] == 1
    assert evidence["audit_verification"]["ok"] is True
    assert [s["tree_size"] for s in evidence["seals"]] == [6]
    # The attached bytes are the ones whose SHA-256 the audit event recorded and the report prints.
    attached = PdfReader(io.BytesIO(pdf)).attachments["evidence.json"][0]
    evidence_sha = hashlib.sha256(attached).hexdigest()
    assert event.data["evidence_sha256"] == evidence_sha
    for text in (pdf_text(pdf), poppler_text(pdf)):
        assert evidence_sha in text.replace(" ", "")

    xmp = xmp_of(pdf)
    assert re.search(r"pdfaid:part(>|=\")3", xmp), xmp
    assert re.search(r"pdfaid:conformance(>|=\")B", xmp), xmp
    root = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    assert root["/OutputIntents"][0].get_object()["/S"] == "/GTS_PDFA1"
    spec = root["/Names"]["/EmbeddedFiles"]["/Names"][1].get_object()
    assert spec["/AFRelationship"] == "/Data" and spec["/F"] == "evidence.json"
    fonts = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True).stdout.decode().splitlines()[2:]
    assert fonts and all(line.split()[-5] == "yes" for line in fonts), fonts  # every font embedded


def test_report_says_failed_when_the_trail_was_edited(served, risk_officer) -> None:
    event = AuditEvent.objects.filter(action="governance.version.approved").get()
    tamper(AuditEvent, {"pk": event.pk}, data={"edited": True})
    report = services.generate_version_report(served.pk, actor=risk_officer)
    text = pdf_text(report.pdf)
    assert "Verification FAILED" in text
    assert f"event #{event.seq} (governance.version.approved) was altered" in text


def test_override_is_highlighted_in_both_reports(in_review, risk_officer) -> None:
    fairness = CheckRun.objects.get(version=in_review, kind="fairness")
    CheckRun.objects.filter(pk=fairness.pk).update(status="failed")
    workflow.approve_version(
        in_review.pk, actor=risk_officer, justification="Accepted for a pilot of three months.", override=True
    )
    version_text = pdf_text(services.generate_version_report(in_review.pk, actor=risk_officer).pdf)
    assert "Approval OVERRIDE" in version_text
    assert "Approved although a gating check failed." in version_text

    now = timezone.now()
    report = services.generate_period_report(
        since=now - timedelta(days=1), until=now + timedelta(days=1), actor=risk_officer
    )
    text = pdf_text(report.pdf)
    assert "Accepted for a pilot of three months." in text
    assert "OVERRIDE" in text
    evidence = evidence_of(report.pdf)
    assert [d["justification"] for d in evidence["overrides"]] == ["Accepted for a pilot of three months."]


def test_period_report_lists_decisions_deployments_policy_changes_and_volumes(
    served, auditor, risk_officer, api_client
) -> None:
    update_policy(
        active_policy().pk,
        actor=risk_officer,
        justification="Accuracy floor raised by the committee.",
        changes={"min_accuracy": 0.71},
    )
    api_client.force_authenticate(auditor)
    today = timezone.now().date()
    response = api_client.get(f"/api/v1/reports/period.pdf?since={today - timedelta(days=1)}&until={today}")
    assert response.status_code == 200, response.content[:300]
    evidence = evidence_of(response.content)
    assert [d["kind"] for d in evidence["decisions"]] == ["approve", "deploy"]
    assert evidence["prediction_volumes"] == [
        {"model": served.registered_model.name, "version": 1, "requests": 6, "rows_predicted": 15, "refused": 1}
    ]
    # the fixture's lenient thresholds (set by the system) and the officer's change, both audited
    assert [c["by"] for c in evidence["policy_changes"]] == ["system", risk_officer.username]
    assert evidence["policy_changes"][-1]["justification"] == "Accuracy floor raised by the committee."
    assert evidence["audit_verification"]["ok"] is True
    for text in (pdf_text(response.content), poppler_text(response.content)):
        assert "Go live for the pilot." in text
        # In the decisions table the time cell's second line is read between the justification's lines.
        assert " ".join(LONG_JUSTIFICATION.split()) in re.sub(r"\d\d:\d\d:\d\d ", "", text)
        assert "min_accuracy: 0.7 → 0.71" in text and "Accuracy floor raised by the committee." in text
        assert "PASSED" in text
    xmp = xmp_of(response.content)
    assert re.search(r"pdfaid:part(>|=\")3", xmp)


def test_period_report_refuses_a_reversed_or_malformed_period(auditor, api_client) -> None:
    api_client.force_authenticate(auditor)
    bad = api_client.get("/api/v1/reports/period.pdf?since=2026-02-01&until=2026-01-01")
    assert bad.status_code == 400
    assert "end after it starts" in bad.json()["error"]["message"]
    garbage = api_client.get("/api/v1/reports/period.pdf?since=yesterday&until=2026-01-01")
    assert garbage.status_code == 400
    assert "since" in garbage.json()["error"]["message"]


@pytest.mark.parametrize("who", ["data_scientist", "outsider"])
def test_reports_are_for_auditors_and_risk_officers_only(who, served, api_client, request) -> None:
    api_client.force_authenticate(request.getfixturevalue(who))
    name = served.registered_model.name
    assert api_client.get(f"/api/v1/models/{name}/versions/1/report.pdf").status_code == 403
    assert api_client.get("/api/v1/reports/period.pdf?since=2026-01-01&until=2026-12-31").status_code == 403


def test_report_of_unknown_version_is_404_and_anonymous_is_401(served, api_client, risk_officer) -> None:
    name = served.registered_model.name
    assert api_client.get(f"/api/v1/models/{name}/versions/1/report.pdf").status_code == 401
    api_client.force_authenticate(risk_officer)
    assert api_client.get(f"/api/v1/models/{name}/versions/9/report.pdf").status_code == 404
    assert api_client.get(f"/api/v1/models/{name}/versions/1/report.pdf").status_code == 200


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Any:
    _Recorder.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_model_card_markup_renders_as_text_and_fetches_nothing(served, risk_officer, listener) -> None:
    hostile = f'<img src="file:///etc/passwd"> <link rel="stylesheet" href="{listener}/card.css"> {listener}/x.png'
    with triggers_dropped():  # (written behind the workflow: the renderer must hold whatever the card says)
        ModelCard.objects.filter(version=served).update(caveats_and_recommendations=hostile)
    report = services.generate_version_report(served.pk, actor=risk_officer)
    assert report.refused_urls == []  # the markup never became markup, so nothing was even asked for
    assert _Recorder.hits == []
    for text in (pdf_text(report.pdf), poppler_text(report.pdf)):
        assert '<img src="file:///etc/passwd">' in text
        assert f"{listener}/card.css" in text
        assert "root:x:0:0" not in text


def test_renderer_refuses_files_and_network_even_for_raw_html(listener, tmp_path) -> None:
    """Defence in depth: were escaping ever bypassed, the fetcher still gives nothing."""
    secret = tmp_path / "secret.svg"
    secret.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    html = (
        f'<html><head><link rel="stylesheet" href="{listener}/a.css"></head><body>'
        f'<img src="file://{secret}"><img src="file:///etc/passwd"><img src="{listener}/b.png">'
        '<img src="https://report.invalid/static/../../../../etc/passwd">'
        "<p>hello</p></body></html>"
    )
    rendered = render_pdf_inline(html, attachments=[], static_roots=[str(tmp_path / "static")])
    assert rendered.pdf.startswith(b"%PDF-")
    assert f"{listener}/a.css" in rendered.refused
    assert f"file://{secret}" in rendered.refused
    assert "file:///etc/passwd" in rendered.refused
    assert f"{listener}/b.png" in rendered.refused
    assert _Recorder.hits == []
    assert rendered.fetched == []


def test_rendering_is_stopped_at_the_time_limit() -> None:
    html = "<html><body>" + "<table>" + "<tr><td>cell</td></tr>" * 20000 + "</table></body></html>"
    with pytest.raises(RenderError, match="longer than 0.2 s"):
        render_pdf(html, attachments=[], static_roots=[], timeout=0.2)


def test_report_pages_render_to_png_and_no_word_leaves_the_page(served, risk_officer, tmp_path) -> None:
    """What the eye checks on the pdftoppm images, checked on every word's box: long hashes and
    justifications wrap inside the A4 page's margins."""
    report = services.generate_version_report(served.pk, actor=risk_officer)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(report.pdf)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == len(PdfReader(io.BytesIO(report.pdf)).pages) >= 3
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, check=True).stdout.decode()
    words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">', boxes)
    assert len(words) > 500
    width, height = 595.28, 841.89  # A4 in points; the margins are 16 mm (45 pt) left and right
    for x_min, y_min, x_max, y_max in words:
        assert float(x_min) >= 40 and float(x_max) <= width - 40, (x_min, x_max)
        assert float(y_min) >= 0 and float(y_max) <= height
