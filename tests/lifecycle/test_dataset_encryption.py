"""Datasets at rest: each dataset's file encrypted under a key of its own,
read only through lifecycle.dataset_store, and a risk officer's destruction of that key once no
version that used it can be served and the retention has passed."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from compliance.evidence import verify_evidence
from core import audit, envelope
from core.actors import Actor
from core.models import AuditEvent
from governance import dataset_rules, datasets, operations, workflow
from governance.errors import DatasetInUse, DatasetRetentionRunning, WorkflowError
from governance.policies import active_policy
from lifecycle import dataset_store, encrypted_csv
from lifecycle.errors import DatasetIntegrityError, DatasetKeyDestroyed, DatasetKeysUnavailable, Forbidden
from lifecycle.models import Dataset, DatasetKey
from serving import subject_keys
from tests.conftest import make_version, tamper
from tests.serving.conftest import checked, production  # noqa: F401

SEGMENT = 4096  # small segments, so the demo data spans several


def raw_file(dataset: Dataset) -> bytes:
    with default_storage.open(dataset.file.name, "rb") as handle:
        return handle.read()


def overwrite(dataset: Dataset, data: bytes) -> None:
    default_storage.delete(dataset.file.name)
    assert default_storage.save(dataset.file.name, ContentFile(data)) == dataset.file.name


@pytest.fixture
def segmented(monkeypatch: Any, data_scientist, registered_model, skops_bytes, train_csv, eval_csv) -> Any:
    monkeypatch.setattr(encrypted_csv, "SEGMENT_BYTES", SEGMENT)
    return make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv)


def later(monkeypatch: Any, days: int) -> None:
    """The rules' clock moved `days` ahead (nothing else: the events keep their real times)."""
    moment = timezone.now() + timedelta(days=days)
    monkeypatch.setattr(dataset_rules, "timezone", SimpleNamespace(now=lambda: moment))


@pytest.fixture
def retired(production, risk_officer) -> Any:  # noqa: F811
    return operations.retire_version(production.pk, actor=risk_officer, justification="Replaced by the 2027 model.")


def destroy(version: Any, actor: Actor, which: str = "evaluation_dataset") -> DatasetKey:
    return datasets.destroy_dataset_key(
        getattr(version, f"{which}_id"), actor=actor, justification="Retention of credit-risk v1 has ended."
    )


# --- at rest ---------------------------------------------------------------------------------
def test_the_stored_file_holds_no_value_of_the_csv_in_clear(draft_version, eval_csv, german):
    dataset = draft_version.evaluation_dataset
    raw = raw_file(dataset)
    first_row = eval_csv.split(b"\n")[1]
    amount = str(german[1]["credit_amount"].iloc[0]).encode()
    assert raw.startswith(encrypted_csv.MAGIC) and dataset.file.name.endswith(".csv.enc")
    for clear in (first_row, b"credit_amount", b"checking_account", amount + b","):
        assert clear not in raw
    assert hashlib.sha256(raw).hexdigest() != dataset.sha256
    assert hashlib.sha256(dataset_store.read_dataset_bytes(dataset)).hexdigest() == dataset.sha256
    key = DatasetKey.objects.get(dataset=dataset)
    assert key.wrapped and len(bytes(key.wrapped)) == 12 + 32 + 16 and key.kek_id == envelope.keks()[0]


def test_reading_gives_back_exactly_what_was_uploaded(draft_version, train_csv, eval_csv):
    assert dataset_store.read_dataset_bytes(draft_version.training_dataset) == train_csv
    assert dataset_store.read_dataset_bytes(draft_version.evaluation_dataset) == eval_csv
    assert draft_version.evaluation_dataset.sha256 == hashlib.sha256(eval_csv).hexdigest()
    assert draft_version.training_dataset.at_rest == "encrypted"


def test_a_dataset_spanning_many_segments_round_trips(segmented, eval_csv):
    dataset = segmented.evaluation_dataset
    segments = -(-len(eval_csv) // SEGMENT)
    assert segments > 3
    assert len(raw_file(dataset)) == encrypted_csv.HEADER.size + len(eval_csv) + 16 * segments
    assert dataset_store.read_dataset_bytes(dataset) == eval_csv


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda raw: raw[:100] + bytes([raw[100] ^ 1]) + raw[101:], id="a changed byte"),
        pytest.param(lambda raw: raw[: encrypted_csv.HEADER.size + 2 * (SEGMENT + 16)], id="cut at a segment end"),
        pytest.param(lambda raw: raw[:-5], id="cut inside the last segment"),
        pytest.param(lambda raw: raw + b"x" * 40, id="bytes appended"),
        pytest.param(
            lambda raw: (
                raw[:16]
                + raw[16 + SEGMENT + 16 : 16 + 2 * (SEGMENT + 16)]
                + raw[16 : 16 + SEGMENT + 16]
                + raw[16 + 2 * (SEGMENT + 16) :]
            ),
            id="two segments swapped",
        ),  # fmt: skip
        pytest.param(lambda raw: raw[:5] + b"\x00\x00\x00\x10" + raw[9:], id="the header's segment size changed"),
    ],
)
def test_a_tampered_file_is_refused_with_a_named_error(segmented, change):
    dataset = segmented.evaluation_dataset
    overwrite(dataset, change(raw_file(dataset)))
    with pytest.raises(DatasetIntegrityError) as refused:
        dataset_store.read_dataset_bytes(dataset)
    assert refused.value.code == "dataset_tampered" and refused.value.status == 409
    assert str(dataset) in refused.value.message


def test_the_file_of_another_dataset_does_not_open(draft_version):
    training, evaluation = draft_version.training_dataset, draft_version.evaluation_dataset
    overwrite(evaluation, raw_file(training))
    with pytest.raises(DatasetIntegrityError, match="belongs to another dataset"):
        dataset_store.read_dataset_bytes(evaluation)
    # even with the other dataset's key row copied over: the wrapped key is bound to its dataset
    source = DatasetKey.objects.get(dataset=training)
    DatasetKey.objects.filter(dataset=evaluation).update(wrapped=source.wrapped, kek_id=source.kek_id)
    with pytest.raises(DatasetKeysUnavailable):
        dataset_store.read_dataset_bytes(evaluation)


def test_a_plain_csv_put_in_place_of_the_encrypted_file_is_refused(draft_version, eval_csv):
    dataset = draft_version.evaluation_dataset
    overwrite(dataset, eval_csv)  # the right bytes, in clear: not what this dataset stores
    with pytest.raises(DatasetIntegrityError, match="not an encrypted dataset file"):
        dataset_store.read_dataset_bytes(dataset)


def test_a_wrong_kek_gives_a_clear_error_and_stores_nothing(
    draft_version, settings, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root
):
    settings.LOG_KEK = "77" * 32
    subject_keys.forget_keys()
    with pytest.raises(DatasetKeysUnavailable) as refused:
        dataset_store.read_dataset_bytes(draft_version.evaluation_dataset)
    assert refused.value.status == 503 and refused.value.code == "dataset_keys_unavailable"
    assert "LOG_KEK" in refused.value.message and str(draft_version.evaluation_dataset) in refused.value.message
    before = sorted(p.name for p in media_root.rglob("*.enc"))
    different = eval_csv.replace(b"\n", b"\r\n")  # new bytes: a new dataset would be stored
    with pytest.raises(Exception, match="LOG_KEK"):
        make_version(data_scientist, registered_model, skops_bytes, train_csv, different)
    assert sorted(p.name for p in media_root.rglob("*.enc")) == before
    assert Dataset.objects.count() == 2


def test_kek_rotation_rewraps_the_dataset_keys(draft_version, settings, eval_csv):
    old = settings.LOG_KEK
    settings.LOG_KEK, settings.LOG_KEK_PREVIOUS = "33" * 32, [old]
    subject_keys.forget_keys()
    subject_keys.rotate_kek()
    settings.LOG_KEK_PREVIOUS = []
    subject_keys.forget_keys()
    assert set(DatasetKey.objects.values_list("kek_id", flat=True)) == {envelope.keks()[0]}
    assert dataset_store.read_dataset_bytes(draft_version.evaluation_dataset) == eval_csv


def test_a_dataset_stored_in_clear_before_reads_as_before_until_the_command_encrypts_it(
    draft_version, eval_csv, risk_officer, django_capture_on_commit_callbacks
):
    dataset = draft_version.evaluation_dataset
    clear_name = default_storage.save("datasets/legacy/v1.csv", ContentFile(eval_csv))
    Dataset.objects.filter(pk=dataset.pk).update(file=clear_name)
    DatasetKey.objects.filter(dataset=dataset).delete()
    dataset.refresh_from_db()
    assert dataset.at_rest.startswith("stored in clear")
    assert dataset_store.read_dataset_bytes(dataset) == eval_csv
    with pytest.raises(Exception, match="encrypt_datasets"):
        destroy(draft_version, risk_officer)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("encrypt_datasets", stdout=io.StringIO())
    dataset.refresh_from_db()
    assert not default_storage.exists(clear_name)
    assert raw_file(dataset).startswith(encrypted_csv.MAGIC) and eval_csv.split(b"\n")[1] not in raw_file(dataset)
    assert dataset_store.read_dataset_bytes(dataset) == eval_csv
    assert AuditEvent.objects.filter(action=audit.DATASET_ENCRYPTED, target_id=str(dataset.pk)).count() == 1
    assert dataset_store.datasets_in_clear() == []


# --- destroying a dataset's key ----------------------------------------------------------------
def test_destruction_is_refused_while_a_version_using_the_dataset_may_be_served(
    production,  # noqa: F811
    risk_officer,
    data_scientist,
    skops_bytes,
    train_csv,
    eval_csv,
):
    with pytest.raises(DatasetInUse) as refused:
        destroy(production, risk_officer)
    assert refused.value.status == 409 and "credit-risk v1 (production)" in refused.value.message
    draft = make_version(data_scientist, production.registered_model, skops_bytes, train_csv, eval_csv)
    assert draft.evaluation_dataset_id == production.evaluation_dataset_id  # the same bytes: reused
    operations.retire_version(production.pk, actor=risk_officer, justification="Replaced.")
    with pytest.raises(DatasetInUse, match=r"credit-risk v2 \(draft\)"):
        destroy(production, risk_officer)
    assert DatasetKey.objects.get(dataset_id=production.evaluation_dataset_id).destroyed_at is None
    refusals = AuditEvent.objects.filter(action=audit.ACTION_REFUSED, target_type="lifecycle.dataset")
    assert refusals.count() == 2 and refusals.last().data["attempted"] == "destroy_dataset_key"


def test_destruction_waits_for_the_retention_after_the_last_version_retired(retired, risk_officer, monkeypatch):
    days = active_policy().personal_data_retention_days
    with pytest.raises(DatasetRetentionRunning) as refused:
        destroy(retired, risk_officer)
    until = (dataset_rules.ended_at(retired) + timedelta(days=days)).date().isoformat()
    assert until in refused.value.message
    later(monkeypatch, days - 1)
    with pytest.raises(DatasetRetentionRunning):
        destroy(retired, risk_officer)
    later(monkeypatch, days + 1)
    key = destroy(retired, risk_officer)
    assert key.destroyed_at is not None and key.wrapped is None and key.destroyed_by == risk_officer


def test_only_risk_officers_destroy_a_key(retired, data_scientist, auditor, outsider, risk_officer, monkeypatch):
    later(monkeypatch, active_policy().personal_data_retention_days + 1)
    for person in (data_scientist, auditor, outsider):
        with pytest.raises(Forbidden):
            destroy(retired, person)
    assert DatasetKey.objects.get(dataset_id=retired.evaluation_dataset_id).wrapped is not None
    with pytest.raises(Exception, match="justification"):
        datasets.destroy_dataset_key(retired.evaluation_dataset_id, actor=risk_officer, justification="  ")
    destroy(retired, risk_officer)


def test_after_destruction_every_read_fails_with_the_named_error_and_the_audit_holds(
    retired, risk_officer, monkeypatch
):
    later(monkeypatch, active_policy().personal_data_retention_days + 1)
    key = destroy(retired, risk_officer)
    dataset = retired.evaluation_dataset
    day = f"{key.destroyed_at:%Y-%m-%d}"
    for read in (dataset_store.read_dataset_bytes, dataset_store.open_dataset):
        with pytest.raises(DatasetKeyDestroyed) as refused:
            read(dataset)
        assert refused.value.status == 410 and day in refused.value.message and str(dataset) in refused.value.message
    assert DatasetKey.objects.filter(dataset=dataset, wrapped__isnull=True).count() == 1
    event = AuditEvent.objects.get(action=audit.DATASET_KEY_DESTROYED)
    assert event.actor_id == risk_officer.pk and event.target_id == str(dataset.pk)
    assert event.data["sha256"] == dataset.sha256 and event.data["justification"].startswith("Retention")
    assert event.data["versions"] == [{"model": "credit-risk", "version": 1, "status": "retired"}]
    assert verify_evidence().ok
    with pytest.raises(WorkflowError, match="destroyed on"):  # a second time: already destroyed
        destroy(retired, risk_officer)
    # putting the wrapped key back behind the application's back is seen by verification
    tamper(DatasetKey, {"pk": key.pk}, wrapped=b"\x00" * 60, destroyed_at=None)
    assert not verify_evidence().ok


def test_after_destruction_pages_apis_and_reports_say_key_destroyed_instead_of_failing(
    retired, risk_officer, auditor, data_scientist, client, api_client, monkeypatch, skops_bytes, train_csv, eval_csv
):
    later(monkeypatch, active_policy().personal_data_retention_days + 1)
    key = destroy(retired, risk_officer)
    destroyed = f"key destroyed on {key.destroyed_at:%Y-%m-%d}"
    name, number = retired.registered_model.name, retired.version
    for person, url in (
        (data_scientist, retired.get_absolute_url()),
        (auditor, f"/audit/models/{name}/"),
        (auditor, f"/audit/models/{name}/versions/{number}/"),
        (risk_officer, f"/admin/governance/versionreview/{retired.pk}/change/"),
        (risk_officer, "/admin/lifecycle/dataset/"),
    ):
        client.force_login(person)
        response = client.get(url)
        assert response.status_code == 200, url
        assert destroyed in response.content.decode(), url
    api_client.force_authenticate(auditor)
    record = api_client.get(f"/api/v1/models/{name}/versions/{number}/").json()
    assert record["lineage"]["evaluation_dataset"]["at_rest"] == destroyed
    assert record["lineage"]["evaluation_dataset"]["sha256"] == retired.evaluation_dataset.sha256
    assert record["lineage"]["training_dataset"]["at_rest"] == "encrypted"
    for pdf in ("report.pdf", "technical-documentation.pdf"):
        response = api_client.get(f"/api/v1/models/{name}/versions/{number}/{pdf}")
        assert response.status_code == 200, pdf
        content = b"".join(response.streaming_content) if response.streaming else response.content
        text = subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True, check=True).stdout
        assert destroyed in " ".join(text.decode().split()), pdf
    client.force_login(data_scientist)
    form = client.get(f"/registry/models/{name}/versions/new/").content.decode()
    assert "german-train v1 (" in form and "german-eval v1 (" not in form  # not offered any more
    # a new version naming the destroyed dataset is refused beside its field; the same bytes
    # uploaded again become a new dataset version with a key of its own
    api_client.force_authenticate(data_scientist)
    refused = api_client.post(
        f"/api/v1/models/{name}/versions/",
        {"evaluation_dataset": retired.evaluation_dataset_id, "training_dataset": retired.training_dataset_id},
    )
    named = str(refused.json()["error"]["details"]["evaluation_data"])
    assert refused.status_code == 400 and f"its key was destroyed on {key.destroyed_at:%Y-%m-%d}" in named
    again = make_version(data_scientist, retired.registered_model, skops_bytes, train_csv, eval_csv)
    assert again.evaluation_dataset_id != retired.evaluation_dataset_id
    assert again.evaluation_dataset.version == 2 and again.training_dataset_id == retired.training_dataset_id
    assert dataset_store.read_dataset_bytes(again.evaluation_dataset) == eval_csv


def test_a_batch_over_a_destroyed_dataset_is_a_named_410_and_over_a_live_one_gets_its_own_copy(
    retired,
    risk_officer,
    data_scientist,
    api_client,
    monkeypatch,
    skops_bytes,
    train_csv,
    eval_csv,
    eager_tasks,
    django_capture_on_commit_callbacks,
):
    later(monkeypatch, active_policy().personal_data_retention_days + 1)
    destroy(retired, risk_officer)
    monkeypatch.setattr(dataset_rules, "timezone", timezone)  # today again
    version = checked(
        make_version(data_scientist, retired.registered_model, skops_bytes, train_csv, eval_csv), data_scientist
    )
    workflow.approve_version(version.pk, actor=risk_officer, justification="Reviewed.")
    workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")
    api_client.force_authenticate(data_scientist)
    url = f"/api/v1/models/{version.registered_model.name}/batches"
    gone = api_client.post(url, {"dataset": retired.evaluation_dataset_id}, format="json")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "dataset_key_destroyed"
    with django_capture_on_commit_callbacks(execute=True):
        accepted = api_client.post(url, {"dataset": version.evaluation_dataset_id}, format="json")
    assert accepted.status_code == 202, accepted.json()
    from serving.models import BatchJob

    job = BatchJob.objects.get(public_id=accepted.json()["id"])
    assert job.input_file.startswith("batches/inputs/") and job.input_file != version.evaluation_dataset.file.name
    assert job.input_sha256 == version.evaluation_dataset.sha256
    assert api_client.get(f"/api/v1/batches/{job.public_id}").json()["status"] == "completed"


def test_a_risk_officer_destroys_a_key_from_the_admin_with_a_justification(
    retired, risk_officer, data_scientist, client, monkeypatch
):
    later(monkeypatch, active_policy().personal_data_retention_days + 1)
    dataset_id = retired.evaluation_dataset_id
    url = "/admin/lifecycle/dataset/"
    client.force_login(risk_officer)
    confirm = client.post(url, {"action": "destroy_key", "_selected_action": [dataset_id], "index": 0})
    assert confirm.status_code == 200 and "Justification (required" in confirm.content.decode()
    assert "Can its key be destroyed now?" in confirm.content.decode()
    unjustified = {"action": "destroy_key", "_selected_action": [dataset_id], "confirm": "yes", "justification": ""}
    assert "A written justification is required" in client.post(url, unjustified).content.decode()
    assert DatasetKey.objects.get(dataset_id=dataset_id).destroyed_at is None
    done = client.post(url, {**unjustified, "justification": "Retention over."}, follow=True)
    assert done.status_code == 200 and "was destroyed on" in done.content.decode()
    key = DatasetKey.objects.get(dataset_id=dataset_id)
    assert key.destroyed_by == risk_officer and key.justification == "Retention over." and key.wrapped is None
    client.force_login(data_scientist)
    assert client.get(url).status_code in (302, 403)
    assert client.post(url, {**unjustified, "justification": "x"}).status_code in (302, 403)
