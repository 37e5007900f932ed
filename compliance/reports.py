"""Compliance reports as PDF/A-3b: a template context in, PDF bytes out.

The HTML comes from templates/reports/ (Django autoescaping: user text is text), the
machine-readable evidence is attached as evidence.json (AFRelationship Data), and WeasyPrint
runs in a child process that may fetch only our static files and is stopped after
REPORT_RENDER_TIMEOUT seconds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from compliance.pdf_render import Rendered, RenderError, render_pdf
from compliance.report_tables import with_contents

__all__ = ["RenderError", "Report", "render_report"]

EVIDENCE_NAME = "evidence.json"


@dataclass
class Report:
    pdf: bytes
    sha256: str
    evidence_sha256: str
    refused_urls: list[str]


def _static_roots() -> list[str]:
    roots = [str(p) for p in settings.STATICFILES_DIRS]
    return [*roots, str(settings.STATIC_ROOT)] if settings.STATIC_ROOT else roots


def render_report(template: str, context: dict[str, Any], *, evidence: bytes, moment: datetime | None = None) -> Report:
    """Render one report; RenderError when it fails or runs past the time limit. `moment`: the
    date written into the PDF (its attachment's dates); a report whose content has no generation
    time and passes one derived from its inputs is the same bytes every time."""
    evidence_sha = hashlib.sha256(evidence).hexdigest()
    html = with_contents(
        render_to_string(template, {**context, "evidence_sha256": evidence_sha, "evidence_name": EVIDENCE_NAME})
    )
    rendered: Rendered = render_pdf(
        html,
        attachments=[(EVIDENCE_NAME, evidence, "Machine-readable evidence of this report (JSON)")],
        static_roots=_static_roots(),
        timeout=settings.REPORT_RENDER_TIMEOUT,
        title=str(context.get("title", "")),
        moment=moment,
    )
    return Report(
        pdf=rendered.pdf,
        sha256=hashlib.sha256(rendered.pdf).hexdigest(),
        evidence_sha256=evidence_sha,
        refused_urls=rendered.refused,
    )
