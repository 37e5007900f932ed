"""`make demo` as a newcomer runs it: the demo loaded, the site and a real Celery worker on the
filesystem broker, and a batch job whose progress bar moves while the worker scores its chunks.

The demo runs in its own temporary folder (database, media, broker), on a free port; its
process group is ended at the end of the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Browser, expect

from lifecycle import demo_data
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["MEDIA_ROOT"] = str(folder / "media")
    log = (folder / "make-demo.log").open("w")
    process = subprocess.Popen(
        ["make", "demo", f"PORT={port}", f"DEMO_DATABASE_URL=sqlite:///{folder}/db.sqlite3",
         f"DEMO_BROKER_DIR={folder}/broker"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # migrations and the demo's models, checks included
    while True:
        try:
            urllib.request.urlopen(f"{base}/login/", timeout=2)  # noqa: S310 (our own local server)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGTERM)
                pytest.fail(f"make demo did not start:\n{(folder / 'make-demo.log').read_text()[-3000:]}")
            time.sleep(1)
    yield base
    os.killpg(process.pid, signal.SIGTERM)  # make's group: the server and the worker
    process.wait(timeout=30)
    printed = (folder / "make-demo.log").read_text()
    # the start is quiet: the in-process tasks' lines and mails went to the seed log
    assert "Task governance.tasks" not in printed and "Subject:" not in printed, printed[:3000]


def test_the_demos_batch_bar_moves_while_its_worker_scores(demo: str, tmp_path: Path, screenshots: Path) -> None:
    from playwright.sync_api import sync_playwright

    evaluation = demo_data.split(demo_data.load_german_credit())[1]
    big = tmp_path / "applications.csv"
    # 99,900 rows: 100 chunks of the demo's 1,000 rows, several seconds of work on a fast machine, so the
    # page (polling each second) sees the bar between the first chunk and the last
    pd.concat([evaluation] * 333).to_csv(big, index=False)
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.goto(f"{demo}/login/")
        logins = page.locator("#demo-logins tbody tr td:first-child")
        expect(logins).to_have_text(["dana", "sam", "rita", "omar", "audrey", "valerie", "cora", "admin"])
        page.screenshot(path=str(screenshots / "pages-demo-login-1280.png"), full_page=True)
        page.fill("#id_username", "dana")
        page.fill("#id_password", "demo-password-2026")
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{demo}/batches/")
        page.select_option("#target", value="loan-prescreen:1")
        page.set_input_files("#data", str(big))
        page.get_by_role("button", name="Start the job").click()
        page.wait_for_url("**/batches/*-*/")
        bar = page.locator("#job-progress")
        seen = [float(bar.get_attribute("value") or 0)]
        assert seen[0] < 100  # the page came back before the work was done: a worker does it
        while seen[-1] < 100:
            page.wait_for_function(  # the page's own polling changes the bar, no reload
                "v => Number(document.getElementById('job-progress').value) !== v", arg=seen[-1], timeout=120_000
            )
            seen.append(float(bar.get_attribute("value") or 0))
            if 0 < seen[-1] < 100 and len(seen) == 2:
                page.screenshot(path=str(screenshots / "pages-demo-batch-moving-1280.png"), full_page=True)
        assert seen == sorted(seen) and seen[-1] == 100.0
        assert any(0 < v < 100 for v in seen), seen  # seen part-way, between the first and the last chunk
        expect(page.locator("#job-status")).to_have_text("Completed")
        expect(page.locator("#job-rows")).to_have_text("99,900")
        expect(page.locator("#job-chunks")).to_have_text("100")
        browser.close()
