"""HTML to PDF/A-3b with WeasyPrint, in a child process that can be killed (HTML in, bytes out).

Kept free of Django so the child starts from a small, single-threaded fork server. The server is
billiard's (Celery's fork of multiprocessing), as in governance.refit: reports are rendered by
Celery prefork workers, daemon processes that the standard library refuses to give children
("daemonic processes are not allowed to have children"). WeasyPrint may
fetch only data: URLs and files under the given static roots: never the network and never any
other file, whatever the HTML says (a model card is user text)."""

from __future__ import annotations

import io
import mimetypes
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core import child

BASE_URL = "https://report.invalid/"
STATIC_PREFIX = BASE_URL + "static/"


class RenderError(Exception):
    """The report could not be rendered (too slow, or WeasyPrint failed)."""


@dataclass
class Rendered:
    pdf: bytes
    refused: list[str] = field(default_factory=list)  # URLs the document asked for and did not get
    fetched: list[str] = field(default_factory=list)


def _make_fetcher(static_roots: list[str], refused: list[str], fetched: list[str]) -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    roots = [os.path.realpath(r) for r in static_roots]

    class RestrictedFetcher(URLFetcher):
        def __init__(self) -> None:
            super().__init__(timeout=1, allowed_protocols=("data",), allow_redirects=False)

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:"):
                fetched.append(url[:40])
                return super().fetch(url, headers)
            if url.startswith(STATIC_PREFIX):
                relative = url[len(STATIC_PREFIX) :].split("?")[0].split("#")[0]
                for root in roots:
                    path = os.path.realpath(os.path.join(root, relative))
                    if path.startswith(root + os.sep) and os.path.isfile(path):
                        fetched.append(url)
                        with open(path, "rb") as fh:
                            body = fh.read()
                        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
                        return URLFetcherResponse(url, body, {"Content-Type": ctype})
            refused.append(url)
            raise ValueError(f"reports fetch nothing from {url!r}")

    return RestrictedFetcher()


def render_pdf_inline(
    html: str,
    *,
    attachments: list[tuple[str, bytes, str]],
    static_roots: list[str],
    title: str = "",
    moment: datetime | None = None,
) -> Rendered:
    """Render in this process (the child calls this). `moment`: the attachments' creation and
    modification dates (WeasyPrint writes the rendering time otherwise), so a report rendered
    twice from the same inputs is the same bytes (its file identifier is their hash)."""
    from weasyprint import HTML, Attachment

    refused: list[str] = []
    fetched: list[str] = []
    fetcher = _make_fetcher(static_roots, refused, fetched)
    files = [
        Attachment(
            file_obj=io.BytesIO(data),
            name=name,
            description=description,
            relationship="Data",
            url_fetcher=fetcher,
            created=moment,
            modified=moment,
        )
        for name, data, description in attachments
    ]
    pdf = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).write_pdf(
        pdf_variant="pdf/a-3b", attachments=files, pdf_identifier=title.encode()[:32] or None
    )
    return Rendered(pdf=pdf, refused=refused, fetched=fetched)


def _render(
    html: str,
    attachments: list[tuple[str, bytes, str]],
    static_roots: list[str],
    title: str,
    moment: datetime | None,
) -> Rendered:
    """The child's work (core.child passes arguments by position)."""
    return render_pdf_inline(html, attachments=attachments, static_roots=static_roots, title=title, moment=moment)


_context: Any = None


def _mp() -> Any:
    global _context
    if _context is None:
        _context = child.forkserver(["compliance.pdf_render", "weasyprint"])
    return _context


def render_pdf(
    html: str,
    *,
    attachments: list[tuple[str, bytes, str]],
    static_roots: list[str],
    timeout: float,
    title: str = "",
    moment: datetime | None = None,
) -> Rendered:
    """Render in a child process (core.child); kill it and raise RenderError after `timeout` seconds."""
    try:
        rendered: Rendered = child.run(_mp(), _render, html, attachments, static_roots, title, moment, timeout=timeout)
    except child.TimedOut:
        raise RenderError(f"rendering took longer than {timeout:g} s and was stopped") from None
    except child.Died:
        raise RenderError("the renderer stopped without a result") from None
    except child.Failed as exc:
        raise RenderError(str(exc)) from None
    return rendered
