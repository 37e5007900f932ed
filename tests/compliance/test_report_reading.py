"""The PDF reports read like reports, checked on poppler's reading of the bytes: a table of contents
whose page numbers are where the sections are, no heading left alone at a page's foot, table
headers repeated on every page a table runs onto, policy values and pipeline parameters as tables,
and a period report's file name naming the days it covers."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import datetime
from typing import Any

import pytest
from pypdf import PdfReader

from compliance import report_tables, services, techdoc
from core import audit

pytestmark = pytest.mark.django_db


def pages_of(pdf: bytes) -> list[str]:
    """Each page's text as pdftotext -layout reads it (pages end with a form feed)."""
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return out.decode().split("\f")[:-1]


def flat(text: str) -> str:
    return " ".join(text.split())


def contents_of(pages: list[str]) -> dict[str, int]:
    """The table of contents: each entry's title and the page number its leader ends in."""
    first = next(i for i, p in enumerate(pages) if "Contents" in p)
    text = pages[first].split("Contents", 1)[1]
    found = re.findall(r"^\s*(\S.*?)\s*(?:\.\s*){3,}(\d+)\s*$", text, re.M)
    return {flat(title): int(page) for title, page in found}


def headings_of(pdf: bytes) -> set[str]:
    """Every heading (h2 to h4), from the PDF's outline WeasyPrint builds of them."""
    found: set[str] = set()

    def walk(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                found.add(flat(item.title))

    walk(PdfReader(io.BytesIO(pdf)).outline)
    return found


def assert_reads_like_a_report(pdf: bytes, sections: list[str]) -> dict[str, int]:
    pages = pages_of(pdf)
    toc = contents_of(pages)
    headings = headings_of(pdf) | set(toc)
    assert len(headings) > len(toc), headings
    for title in sections:
        assert title in toc, (title, toc)
    for title, number in toc.items():
        # the heading is on the page the contents name
        assert title in flat(pages[number - 1]).replace(title + " .", ""), (title, number)
    for i, page in enumerate(pages[:-1]):
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        body = [line for line in lines if not re.search(r"Page \d+ of \d+$", line)]
        assert flat(body[-1]) not in headings, f"the heading {body[-1]!r} ends page {i + 1}"
        # nor is a heading left alone with a line or two on an otherwise empty page
        assert len(body) > 5, f"page {i + 1} holds only {body}"
    return toc


def test_the_version_report_has_contents_with_page_numbers_and_policy_values_as_a_table(served, risk_officer) -> None:
    pdf = services.generate_version_report(served.pk, actor=risk_officer).pdf
    toc = assert_reads_like_a_report(pdf, ["1. Model card", "3. Checks (submission 1)", "4. Decisions"])
    assert toc["7. Audit verification and prediction seals"] > toc["1. Model card"] >= 1
    text = flat("\n".join(pages_of(pdf)))
    assert "Policy values used:" not in text
    assert not re.search(r"\b(min|max|psi|approvals)_\w+=", text)
    assert "Policy value used by this check" in text
    assert re.search(r"max mae not set", text) and re.search(r"min accuracy 0\.\d", text)


def test_the_technical_documentation_shows_parameters_as_a_table_and_repeats_table_headers(
    served, risk_officer
) -> None:
    # the change log of a model that was asked to do many things it may not: a long table
    for i in range(70):
        audit.record(audit.ACTION_REFUSED, actor=risk_officer, target=served, data={"action": "deploy", "n": i})
    pdf = techdoc.generate_technical_documentation(served.pk, actor=risk_officer).pdf
    assert_reads_like_a_report(
        pdf,
        [
            "1. General description of the AI system",
            "4. Appropriateness of the performance metrics",
            "9. Post-market monitoring plan (Article 72)",
        ],
    )
    pages = pages_of(pdf)
    text = flat("\n".join(pages))
    assert "__estimator__" not in text and '{"' not in text
    step = next(name for name, value in served.params.items() if isinstance(value, list))
    assert re.search(rf"{step} \d+ steps?", text), step
    with_rows = [i for i, page in enumerate(pages) if "governance.action.refused" in page]
    assert len(with_rows) >= 2, "the change log should run over more than one page"
    for i in with_rows:
        assert "Event hash (start)" in pages[i], f"page {i + 1} continues the change log without its header"


def test_the_period_report_has_contents_and_its_file_is_named_by_the_days_it_covers(
    served, auditor, api_client
) -> None:
    api_client.force_authenticate(auditor)
    response = api_client.get("/api/v1/reports/period.pdf?since=2026-01-01&until=2026-01-31")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="governance-report-2026-01-01-to-2026-01-31.pdf"'
    toc = assert_reads_like_a_report(response.content, ["1. Overrides", "6. Prediction volumes"])
    assert "8. Audit verification" in toc
    assert "Governance report 2026-01-01 to 2026-01-31" in flat(pages_of(response.content)[0])


def test_a_month_ending_at_midnight_is_named_by_its_last_day() -> None:
    since, until = datetime.fromisoformat("2026-02-01T00:00:00+00:00"), datetime.fromisoformat("2026-03-01T00:00+00:00")
    assert services.period_filename(since=since, until=until) == "governance-report-2026-02-01-to-2026-02-28.pdf"


def test_pipeline_parameters_become_rows_with_each_step_and_its_own_parameters() -> None:
    params: dict[str, Any] = {
        "memory": None,
        "steps": [
            ["scale", {"__estimator__": "StandardScaler", "params": {"with_mean": True}}],
            ["model", {"__estimator__": "LogisticRegression", "params": {"C": 1.0, "max_iter": 200}}],
        ],
    }
    rows = [(r["name"], r["value"], r["depth"]) for r in report_tables.parameter_rows(params)]
    assert rows == [
        ("memory", "not set", 0),
        ("steps", "2 steps", 0),
        ("scale", "StandardScaler", 1),
        ("with_mean", "yes", 2),
        ("model", "LogisticRegression", 1),
        ("C", "1", 2),
        ("max_iter", "200", 2),
    ]


def test_contents_link_every_section_and_escape_its_title() -> None:
    html = '<body><!-- contents --><h2 class="part">1. A &amp; B <span>x</span></h2><h2>2. C</h2></body>'
    out = report_tables.with_contents(html)
    assert '<h2 id="section-1" class="part">' in out and '<h2 id="section-2">' in out
    assert '<a href="#section-1">1. A &amp; B x</a>' in out and '<a href="#section-2">2. C</a>' in out
    assert report_tables.with_contents("<h2>no mark</h2>") == "<h2>no mark</h2>"
