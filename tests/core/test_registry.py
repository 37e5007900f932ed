"""core.registry: a name looked up at run time (a job, a snapshot) that is asked for and that nobody
provides fails `manage.py check` (core.E003), not the first request or worker that asks for it."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from core import jobs, registry
from governance import snapshots


@pytest.fixture
def isolated(monkeypatch):
    """The registries as they are, with what a test declares undone afterwards."""
    for r in registry.registries():
        monkeypatch.setattr(r, "_wanted", dict(r._wanted))
        monkeypatch.setattr(r, "_provided", dict(r._provided))
    monkeypatch.setattr(registry, "_registries", registry.registries())


def test_every_name_the_application_asks_for_is_provided():
    assert registry.check_every_name_provided() == []
    wanted = {name for r in registry.registries() for name in r._wanted}
    assert {"run_check", "notify", "batch_chunk", "batch_finish", "report_job", "webhook_dispatch"} <= wanted
    assert {"run_check", "notify", "batch_chunk", "batch_finish", "report_job", "webhook_dispatch"} <= set(
        jobs.JOBS._provided
    )
    assert snapshots.RECERTIFICATION in snapshots.SNAPSHOTS
    call_command("check", stdout=io.StringIO())


def test_a_job_asked_for_that_no_task_provides_fails_the_system_check(isolated):
    name = jobs.job("reindex_everything", "governance.sneaky")

    errors = registry.check_every_name_provided()

    assert [(e.id, e.msg) for e in errors] == [
        ("core.E003", "the job 'reindex_everything' is asked for by governance.sneaky but no task provides it")
    ]
    assert "core.jobs.register" in errors[0].hint
    with pytest.raises(SystemCheckError, match="core.E003"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(RuntimeError, match="no task is registered for the job 'reindex_everything'"):
        jobs.after_commit(name)

    jobs.register(name, lambda *args: None)
    assert registry.check_every_name_provided() == []


def test_a_snapshot_without_a_provider_fails_the_system_check(isolated):
    snapshots.SNAPSHOTS._provided.clear()  # (as if the monitoring app were not installed)

    errors = registry.check_every_name_provided()

    assert [(e.id, e.msg) for e in errors] == [
        ("core.E003", "the snapshot 'recertification' is asked for by governance.snapshots but no provider provides it")
    ]


def test_a_new_registry_is_checked_too(isolated):
    exporters: registry.Registry[object] = registry.Registry("export", "exporter", "register an exporter")
    exporters.want("xbrl", "compliance.sneaky")

    @exporters.provides("csv")
    def to_csv() -> str:
        return ""

    assert exporters.get("csv") is to_csv
    assert [e.msg for e in registry.check_every_name_provided()] == [
        "the export 'xbrl' is asked for by compliance.sneaky but no exporter provides it"
    ]
