"""Personal data in the log: encrypted per data subject, erasure that keeps every
proof valid, legal hold, retention, a wrong KEK, and nothing personal in clear anywhere."""

from __future__ import annotations

import io
import logging
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core.models import AuditEvent
from governance import workflow
from governance.policies import active_policy, update_policy
from serving import erasure, personal, seals, subject_keys
from serving.log import record_leaf
from serving.models import LegalHold, PredictionKey, PredictionLog, SubjectKey
from tests.conftest import make_version
from tests.serving.conftest import checked, rows
from tests.serving.test_seals import verify_rfc6962

AGES = [29, 46, 47, 41, 32]  # the evaluation data's first ages
KEYS = ["app-7731", "app-7732", "app-7733", "app-7734", "app-7735"]


@pytest.fixture(autouse=True)
def kek(settings: Any) -> Any:
    settings.LOG_KEK = "11" * 32
    settings.LOG_KEK_PREVIOUS = []
    subject_keys.forget_keys()
    yield settings
    subject_keys.forget_keys()


@pytest.fixture
def personal_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, risk_officer) -> Any:
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    version = make_version(
        data_scientist, registered_model, skops_bytes, train_csv, eval_csv,
        personal_features=["age", "sex"], subject_field="business_key",
    )  # fmt: skip
    version = checked(version, data_scientist)
    workflow.approve_version(version.pk, actor=risk_officer, justification="Reviewed.")
    return workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")


def serve(keyed: Any, german: Any) -> dict[str, Any]:
    instances = rows(german, 5)
    assert [r["age"] for r in instances] == AGES
    response = keyed.post(
        "/api/v1/models/credit-risk/predict", {"instances": instances, "business_keys": KEYS}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()


def raw_row(public_id: str) -> tuple[str, str]:
    """The stored texts, as the database holds them (no model property, no decryption)."""
    return PredictionLog.objects.filter(public_id=public_id).values_list("inputs_json", "business_keys_json").get()


def test_the_declaration_is_validated_shown_and_bound(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv
):
    from lifecycle.errors import SubmissionInvalid

    with pytest.raises(SubmissionInvalid) as refused:
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv,
                     personal_features=["no_such_column"], subject_field="applicant")  # fmt: skip
    assert "not model inputs: no_such_column" in str(refused.value.errors["personal_features"])
    assert "neither" in str(refused.value.errors["subject_field"])
    version = make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv,
                           personal_features=["age"], subject_field="business_key")  # fmt: skip
    from governance import bindings

    assert bindings.current(version)["personal_sha256"] != ""
    assert (
        bindings.personal_hash(make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv)) == ""
    )


def test_the_database_holds_no_personal_value_in_clear_and_auditors_read_them(
    personal_version, keyed, german, api_client, auditor
):
    answer = serve(keyed, german)
    assert answer["business_keys"] == KEYS  # the client gets its keys back as sent
    record_id = answer["prediction_ids"][0].split(".")[0]
    inputs_json, keys_json = raw_row(record_id)
    for key in KEYS:
        assert key not in inputs_json and key not in keys_json
    assert '"age":{"$enc"' in inputs_json and '"sex":{"$enc"' in inputs_json
    assert '"age":29' not in inputs_json and '"age":46' not in inputs_json
    assert not PredictionKey.objects.filter(key__in=KEYS).exists()  # the index holds keyed hashes
    api_client.force_authenticate(auditor)
    detail = api_client.get(f"/api/v1/predictions/{record_id}/").json()
    assert [r["age"] for r in detail["inputs"]] == AGES and detail["business_keys"] == KEYS
    found = api_client.get("/api/v1/predictions/", {"business_key": "app-7733"}).json()["results"]
    assert [r["id"] for r in found] == [record_id]


def test_a_row_is_sealed_once_and_records_sealed_value_by_value_still_read_and_erase(
    personal_version, keyed, german, risk_officer
):
    import orjson

    answer = serve(keyed, german)
    record_id = answer["prediction_ids"][0].split(".")[0]
    inputs_json, keys_json = raw_row(record_id)
    stored = orjson.loads(inputs_json)
    assert stored[0]["age"]["$row"] == 1 and stored[0]["sex"] == {"$enc": "^"}  # one ciphertext per row
    assert all(key == subject_keys.business_key_hash(k) for key, k in zip(orjson.loads(keys_json), KEYS, strict=True))
    # a record written before, one ciphertext per value and the key's after its hash, reads the same
    old_id = "5f0b8a34-0000-4000-8000-000000000001"
    keys = subject_keys.write_keys(
        "credit-risk", {subject_keys.subject_hash("credit-risk", k) for k in KEYS}, date.today().replace(day=1)
    )
    old_rows, old_keys = [], []
    for i, (row, key) in enumerate(zip(rows(german, 5), KEYS, strict=True)):
        pk, aead = keys[subject_keys.subject_hash("credit-risk", key)]
        old_rows.append({**row, **{f: personal._seal(pk, aead, row[f], f"{old_id}.{i}.{f}") for f in ("age", "sex")}})
        sealed = personal._seal(pk, aead, key, f"{old_id}.{i}.business_key")["$enc"]
        old_keys.append(f"{subject_keys.business_key_lookups(key)[1]}|{sealed}")  # then: the whole hash
    new_shown, new_keys = personal.reveal(record_id, stored, orjson.loads(keys_json))
    old_shown, old_keys_shown = personal.reveal(old_id, old_rows, old_keys)
    assert [r["age"] for r in new_shown] == [r["age"] for r in old_shown] == AGES
    assert new_shown == old_shown == rows(german, 5) and new_keys == old_keys_shown == KEYS
    with pytest.raises(subject_keys.KeysUnavailable):  # a row's ciphertext is bound to its place
        personal.reveal(record_id, [stored[1], stored[0]], None)
    # the old records' keys are under the subject hash of before (subject_hash()): erased too
    hashes = subject_keys.subject_hashes("credit-risk", "app-7732")
    assert SubjectKey.objects.filter(subject_hash__in=hashes).count() == 2
    erasure.erase_subject(model_name="credit-risk", subject="app-7732", actor=risk_officer)
    for shown, shown_keys in (
        personal.reveal(record_id, stored, orjson.loads(keys_json)),
        personal.reveal(old_id, old_rows, old_keys),
    ):
        assert shown[1]["age"] == shown[1]["sex"] == shown_keys[1] == personal.ERASED
        assert shown[0]["age"] == AGES[0] and shown_keys[0] == KEYS[0]


def test_erasure_shows_erased_everywhere_and_every_proof_still_verifies(
    personal_version, keyed, german, api_client, auditor, risk_officer, caplog, client
):
    caplog.set_level(logging.DEBUG)
    answer = serve(keyed, german)
    record_id = answer["prediction_ids"][0].split(".")[0]
    seal = seals.seal_predictions()
    record = PredictionLog.objects.get(public_id=record_id)
    proof = seals.inclusion_proof(record)  # taken before the erasure
    api_client.force_authenticate(risk_officer)
    erased = api_client.post("/api/v1/subjects/erasure", {"model": "credit-risk", "subject": "app-7733"}, format="json")
    assert erased.status_code == 200 and erased.json()["keys_erased"] == 1
    # the API, the export, the receipt
    api_client.force_authenticate(auditor)
    detail = api_client.get(f"/api/v1/predictions/{record_id}.2/").json()
    assert detail["row_input"]["age"] == "[erased]" and detail["row_input"]["sex"] == "[erased]"
    assert detail["row_input"]["credit_amount"] == rows(german, 5)[2]["credit_amount"]  # not personal: kept
    assert detail["business_keys"][2] == "[erased]" and detail["business_keys"][1] == "app-7732"
    assert [r["age"] for r in detail["inputs"]][:2] == AGES[:2]  # other subjects untouched
    export = api_client.get(
        "/audit/exports/predictions.csv" if False else "/api/v1/predictions/", {"model": "credit-risk"}
    )
    assert "[erased]" in export.content.decode()
    # every seal, the chain and the evidence verify; the proof taken before still verifies
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert seals.verify_seals().ok
    record.refresh_from_db()
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    assert verify_rfc6962(proof["leaf_index"], seal.tree_size, record_leaf(record), path, bytes.fromhex(seal.root))
    # the audit event has a salted hash, never the value; nothing logged or mailed has it
    event = AuditEvent.objects.get(action="serving.subject.erased")
    assert "app-7733" not in str(event.data) and len(event.data["subject_sha256"]) == 64
    assert not any("app-7733" in r.getMessage() for r in caplog.records)
    assert not any("app-7733" in (m.body + m.subject) for m in mail.outbox)
    assert "app-7733" not in str(list(AuditEvent.objects.values_list("data", flat=True)))


def test_the_receipt_and_explanation_of_an_erased_row_say_so(
    personal_version, keyed, german, api_client, risk_officer, auditor
):
    from compliance import receipts
    from tests.compliance.test_reports import pdf_text

    answer = serve(keyed, german)
    erasure.erase_subject(model_name="credit-risk", subject="app-7731", actor=risk_officer)
    record_id = answer["prediction_ids"][0]
    api_client.force_authenticate(auditor)
    explanation = api_client.get(f"/api/v1/predictions/{record_id}/explanation")
    assert explanation.status_code == 410 and explanation.json()["error"]["code"] == "inputs_erased"
    record = PredictionLog.objects.get(public_id=record_id.split(".")[0])
    text = " ".join(pdf_text(receipts.generate_receipt(record, 0, actor=auditor).pdf).split())
    assert "inputs of this decision were erased" in text and "[erased]" in text


def test_a_stored_explanation_is_encrypted_under_its_subject_and_erased_with_it(
    personal_version, keyed, german, api_client, risk_officer, auditor
):
    from serving.models import Explanation

    answer = serve(keyed, german)
    record_id = answer["prediction_ids"][0].split(".")[0]
    api_client.force_authenticate(auditor)
    first = api_client.get(f"/api/v1/predictions/{record_id}.1/explanation")
    assert first.status_code == 200 and first.json()["prediction_id"] == f"{record_id}.1"
    stored = Explanation.objects.values_list("payload_json", flat=True).get()
    assert stored.startswith('{"$enc"') and "contributions" not in stored and "method" not in stored
    again = api_client.get(f"/api/v1/predictions/{record_id}.1/explanation").json()
    assert again == first.json()  # the stored one, read through the key
    erasure.erase_subject(model_name="credit-risk", subject=KEYS[1], actor=risk_officer)
    erased = api_client.get(f"/api/v1/predictions/{record_id}.1/explanation")
    assert erased.status_code == 410 and erased.json()["error"]["code"] == "inputs_erased"
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # the evidence was hashed over what is stored


def test_an_outcomes_sensitive_attributes_are_encrypted_under_its_subject(
    personal_version, keyed, german, risk_officer, settings
):
    from monitoring import windows as monitoring
    from serving.models import PredictionOutcome

    answer = serve(keyed, german)
    ids = answer["prediction_ids"]
    single = keyed.post(
        f"/api/v1/predictions/{ids[0]}/outcome", {"actual": 1, "sensitive": {"origin": "Zeta-Land"}}, format="json"
    )
    assert single.status_code == 201, single.content
    bulk = keyed.post(
        "/api/v1/outcomes",
        {"outcomes": [{"prediction_id": ids[1], "actual": 0, "sensitive": {"origin": "Ypsilon"}}]},
        format="json",
    )
    assert bulk.status_code == 201, bulk.content
    stored = list(PredictionOutcome.objects.order_by("row").values_list("sensitive", flat=True))
    assert all(set(s) == {"$enc"} for s in stored) and "Zeta" not in str(stored) and "Ypsilon" not in str(stored)
    update_policy(active_policy().pk, actor=None, changes={"monitor_min_rows": 1}, justification="Test setting.")
    start, end = timezone.now() - timedelta(hours=1), timezone.now() + timedelta(hours=1)
    personal_version.sensitive_features = ["sex", "origin"]
    frame = monitoring.outcome_rows(personal_version, start, end)
    assert sorted(frame["origin"].tolist()) == ["Ypsilon", "Zeta-Land"]
    assert set(frame["sex"]) <= {"male", "female"}  # a personal input, read through its key
    erasure.erase_subject(model_name="credit-risk", subject=KEYS[0], actor=risk_officer)
    frame = monitoring.outcome_rows(personal_version, start, end)
    assert frame["origin"].tolist().count("Zeta-Land") == 0 and "Ypsilon" in frame["origin"].tolist()


def test_a_legal_hold_refuses_erasure_and_retention(personal_version, keyed, german, api_client, risk_officer):
    serve(keyed, german)
    erasure.place_hold(model_name="credit-risk", reason="Litigation 2026-17.", actor=risk_officer)
    api_client.force_authenticate(risk_officer)
    refused = api_client.post(
        "/api/v1/subjects/erasure", {"model": "credit-risk", "subject": "app-7731"}, format="json"
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "legal_hold"
    SubjectKey.objects.update(month=date(2020, 1, 1))
    assert erasure.erase_expired(retention_days=730) == {}
    assert not SubjectKey.objects.filter(erased_at__isnull=False).exists()
    erasure.release_hold(LegalHold.objects.get().pk, actor=risk_officer)
    assert sum(erasure.erase_expired(retention_days=730).values()) == 5


def test_retention_erases_what_is_due_and_nothing_else(personal_version, keyed, german):
    serve(keyed, german)
    hashes = subject_keys.subject_hashes("credit-risk", "app-7731")
    old = SubjectKey.objects.filter(subject_hash__in=hashes)
    assert old.update(month=date(2024, 1, 1)) == 1
    assert erasure.erase_expired(now=timezone.now(), retention_days=730) == {"credit-risk": 1}
    assert SubjectKey.objects.filter(erased_at__isnull=False).count() == 1
    assert SubjectKey.objects.get(subject_hash__in=hashes).erased_because == "retention"
    assert AuditEvent.objects.filter(action="serving.retention.erased").count() == 1
    assert erasure.erase_expired(now=timezone.now() + timedelta(days=1), retention_days=730) == {}
    from django.db import IntegrityError

    policy = active_policy()
    with pytest.raises(IntegrityError):
        type(policy).objects.filter(pk=policy.pk).update(personal_data_retention_days=100)


def test_a_wrong_kek_fails_reads_clearly_and_serving_refuses_with_503(
    personal_version, keyed, german, api_client, auditor, kek
):
    answer = serve(keyed, german)
    kek.LOG_KEK = "22" * 32
    subject_keys.forget_keys()
    api_client.force_authenticate(auditor)
    read = api_client.get(f"/api/v1/predictions/{answer['prediction_ids'][0]}/")
    assert read.status_code == 503 and read.json()["error"]["code"] == "personal_keys_unavailable"
    assert "LOG_KEK" in read.json()["error"]["message"]
    before = PredictionLog.objects.filter(outcome="ok").count()
    refused = keyed.post(
        "/api/v1/models/credit-risk/predict",
        {"instances": rows(german, 1), "business_keys": ["app-9999"]},
        format="json",
    )
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "personal_keys_unavailable"
    assert PredictionLog.objects.filter(outcome="ok").count() == before  # nothing logged in clear
    assert "app-9999" not in str(list(PredictionLog.objects.values_list("inputs_json", "business_keys_json")))


def test_a_refused_request_keeps_no_personal_value_and_errors_do_not_echo_them(personal_version, keyed, german):
    bad = rows(german, 2)
    bad[1]["age"] = 41.5
    response = keyed.post(
        "/api/v1/models/credit-risk/predict", {"instances": bad, "business_keys": KEYS[:2]}, format="json"
    )
    assert response.status_code == 400
    assert "41.5" not in response.content.decode()
    refused = PredictionLog.objects.get(outcome="invalid")
    assert "41.5" not in refused.inputs_json and "29" not in refused.inputs_json.split('"age"')[1][:10]
    assert personal.NOT_LOGGED in refused.inputs_json


def test_kek_rotation_rewraps_keys_without_touching_the_log(personal_version, keyed, german, api_client, auditor, kek):
    answer = serve(keyed, german)
    record_id = answer["prediction_ids"][0].split(".")[0]
    before = raw_row(record_id)
    kek.LOG_KEK_PREVIOUS = ["11" * 32]
    kek.LOG_KEK = "33" * 32
    subject_keys.forget_keys()
    assert subject_keys.rotate_kek() == 5
    kek.LOG_KEK_PREVIOUS = []
    subject_keys.forget_keys()
    assert raw_row(record_id) == before
    api_client.force_authenticate(auditor)
    assert [r["age"] for r in api_client.get(f"/api/v1/predictions/{record_id}/").json()["inputs"]] == AGES


def test_an_inline_explanation_is_returned_in_clear_and_logged_sealed(
    personal_version, keyed, german, api_client, auditor, risk_officer
):
    response = keyed.post(
        "/api/v1/models/credit-risk/predict",
        {"instances": rows(german, 2), "business_keys": KEYS[:2], "explain": True},
        format="json",
    )
    assert response.status_code == 200
    returned = response.json()["explanations"]
    assert "age" in returned[0]["contributions"]
    record_id = response.json()["prediction_ids"][0].split(".")[0]
    outputs_json = PredictionLog.objects.filter(public_id=record_id).values_list("outputs_json", flat=True).get()
    assert '"contributions"' not in outputs_json and '"explanations":[{"$enc"' in outputs_json
    api_client.force_authenticate(auditor)
    logged = api_client.get(f"/api/v1/predictions/{record_id}.0/explanation").json()
    assert logged["contributions"] == returned[0]["contributions"]
    # the auditor's record (API and page) shows the explanations opened, then erased with the subject
    detail = api_client.get(f"/api/v1/predictions/{record_id}/").json()
    assert [e["contributions"] for e in detail["outputs"]["explanations"]] == [e["contributions"] for e in returned]
    assert api_client.get(f"/api/v1/predictions/{record_id}.1/").json()["row_output"]["explanations"] == returned[1]
    from django.test import Client

    page = Client()
    page.force_login(auditor)
    html = page.get(f"/audit/predictions/{record_id}/").content.decode()
    assert "$enc" not in html.split('id="logged-outputs"')[1] and "contributions" in html
    erasure.erase_subject(model_name="credit-risk", subject=KEYS[0], actor=risk_officer)
    detail = api_client.get(f"/api/v1/predictions/{record_id}/").json()
    assert detail["outputs"]["explanations"][0] == personal.ERASED
    assert detail["outputs"]["explanations"][1]["contributions"] == returned[1]["contributions"]


def test_only_risk_officers_erase_whatever_the_interface(personal_version, keyed, german, data_scientist, auditor):
    from serving.errors import ServingError

    serve(keyed, german)
    for person in (data_scientist, auditor):
        with pytest.raises(ServingError) as refused:
            erasure.erase_subject(model_name="credit-risk", subject="app-7731", actor=person)
        assert refused.value.status == 403
    assert not SubjectKey.objects.filter(erased_at__isnull=False).exists()


def test_the_fast_keyed_hash_is_hmac_sha256_of_the_log_key():
    import hmac

    from serving.log import _mac_key, keyed_digest, keyed_hexdigests

    messages = [b"", b"subject\x1fcredit-risk\x1fapp-7731", "business-key\x1fé".encode(), b"x" * 5000]
    expected = [hmac.digest(_mac_key(), m, "sha256") for m in messages]
    assert [keyed_digest(m) for m in messages] == expected
    assert keyed_hexdigests(messages) == [e.hex() for e in expected]
    hashed = hmac.digest(_mac_key(), b"business-key\x1fapp-7731", "sha256").hex()
    assert subject_keys.business_key_hash("app-7731") == "h:" + hashed[:32]  # 128 bits are kept
    assert subject_keys.business_key_lookups("app-7731") == ["h:" + hashed[:32], "h:" + hashed]


def test_a_subject_key_made_in_a_rolled_back_write_is_never_used(personal_version, keyed, german):
    """A new subject's key is written in its record's transaction: when that transaction rolls
    back, the key is gone and the process must not remember it for the next record."""
    from django.db import transaction

    instances = rows(german, 1)

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        personal.protect(personal_version, "credit-risk", instances, ["app-new"], "r1")
        assert SubjectKey.objects.filter(model_name="credit-risk").count() == 1
        raise Abandoned
    assert not SubjectKey.objects.filter(model_name="credit-risk").exists()
    stored, _ = personal.protect(personal_version, "credit-risk", instances, ["app-new"], "r2")
    key_id = int(stored[0]["age"]["$enc"].split(":", 1)[0])
    assert SubjectKey.objects.filter(pk=key_id, erased_at__isnull=True).exists()
    shown, keys = personal.reveal("r2", stored, _)
    assert shown[0]["age"] == instances[0]["age"] and keys == ["app-new"]


def test_a_personal_business_key_indexed_before_by_its_whole_hash_is_still_found(personal_version, keyed, german):
    from serving import selectors

    answer = serve(keyed, german)
    record_id = answer["prediction_ids"][0].split(".")[0]
    short, full = subject_keys.business_key_lookups("app-7733")
    assert len(short) == 2 + 32 and len(full) == 2 + 64 and full.startswith(short)
    assert PredictionKey.objects.filter(key=short).count() == 1
    PredictionKey.objects.filter(key=short).update(key=full)  # as records written before indexed it
    found = selectors.decisions_with_key("app-7733")
    assert [(str(r.public_id), row) for r, row in found] == [(record_id, 2)]


def test_a_new_subjects_key_made_meanwhile_by_another_process_is_the_one_used(personal_version, keyed, german):
    """On PostgreSQL a new subject's key is written by its record's INSERT; when another process
    made that subject's key for the month meanwhile, the INSERT writes nothing and the answer is
    sealed again under the key that exists. Either way: one live key, the record under it."""
    month = date.today().replace(day=1)
    subject = subject_keys.subject_hashes("credit-risk", "app-7731")[1]  # the business key's keyed hash
    other = subject_keys._make_keys("credit-risk", {subject}, month)[subject][0]  # not remembered by this process
    answer = serve(keyed, german)
    record_id = answer["prediction_ids"][0].split(".")[0]
    stored = orjson.loads(raw_row(record_id)[0])
    key_ids = [int(row["age"]["$enc"].split(":", 1)[0]) for row in stored]
    assert key_ids[0] == other
    live = SubjectKey.objects.filter(model_name="credit-risk", erased_at__isnull=True)
    assert live.count() == 5 and set(live.values_list("pk", flat=True)) == set(key_ids)
    shown, keys = personal.reveal_record(PredictionLog.objects.get(public_id=record_id))
    assert [r["age"] for r in shown] == AGES and keys == KEYS
    again = serve(keyed, german)  # the same subjects again: their keys, no new one
    stored = orjson.loads(raw_row(again["prediction_ids"][0].split(".")[0])[0])
    assert [int(row["age"]["$enc"].split(":", 1)[0]) for row in stored] == key_ids and live.count() == 5


def test_on_postgresql_a_new_subjects_key_is_written_by_its_records_insert(
    personal_version, keyed, german, monkeypatch
):
    from django.db import connection

    separate = []
    make_keys = subject_keys._make_keys
    monkeypatch.setattr(subject_keys, "_make_keys", lambda *a: separate.append(a) or make_keys(*a))
    answer = serve(keyed, german)
    # PostgreSQL: no statement of their own (log.Prelude); SQLite: one for the five new keys
    assert len(separate) == (0 if connection.vendor == "postgresql" else 1)
    stored = orjson.loads(raw_row(answer["prediction_ids"][0].split(".")[0])[0])
    key_ids = {int(row["age"]["$enc"].split(":", 1)[0]) for row in stored}
    assert set(SubjectKey.objects.filter(erased_at__isnull=True).values_list("pk", flat=True)) == key_ids
    assert len(key_ids) == 5


def test_a_key_erased_by_another_process_is_no_longer_used_once_remembered_keys_expire(
    personal_version, keyed, german, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """A process remembers subjects' keys at most SUBJECT_KEY_CACHE_SECONDS: an erasure made by
    another process (which cannot clear this one's memory) reaches its new answers by then."""
    import time

    def key_ids() -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):  # (keys are remembered at commit)
            answer = serve(keyed, german)
        stored = orjson.loads(raw_row(answer["prediction_ids"][0].split(".")[0])[0])
        return [int(row["age"]["$enc"].split(":", 1)[0]) for row in stored]

    first = key_ids()
    # erased elsewhere: the rows change, this process's memory does not
    SubjectKey.objects.filter(pk=first[0]).update(wrapped=None, erased_at=timezone.now(), erased_because="request")
    assert key_ids() == first  # still remembered, within the allowed time
    later = time.monotonic() + settings.SUBJECT_KEY_CACHE_SECONDS + 1
    monkeypatch.setattr(subject_keys.time, "monotonic", lambda: later)
    after = key_ids()
    assert after[0] != first[0] and after[1:] == first[1:]  # a new key for the erased subject only
    assert SubjectKey.objects.filter(pk=after[0], erased_at__isnull=True).exists()


def test_an_erasure_in_this_process_forgets_its_remembered_keys_and_subjects_at_once(
    personal_version, keyed, german, risk_officer, django_capture_on_commit_callbacks
):
    """A process remembers its subjects' keys and keyed hashes (a known subject costs no HMAC
    and no round trip): an erasure it makes forgets them all, when it runs and again when it
    commits, so the erased subject's key is never used again here, even from memory."""

    def key_ids() -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):  # (keys are remembered at commit)
            answer = serve(keyed, german)
        stored = orjson.loads(raw_row(answer["prediction_ids"][0].split(".")[0])[0])
        return [int(row["age"]["$enc"].split(":", 1)[0]) for row in stored]

    first = key_ids()
    assert key_ids() == first  # remembered: the same keys, no new one
    month = subject_keys._writing[("credit-risk", subject_keys.month_of(timezone.now()))]
    assert set(month.hashes[True]) == set(KEYS) and {pk for pk, _ in month.keys.values()} == set(first)
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_subject(model_name="credit-risk", subject=KEYS[0], actor=risk_officer)
    assert subject_keys._writing == {}  # forgotten, keys and subjects alike
    after = key_ids()
    assert after[0] != first[0] and after[1:] == first[1:]  # a new key for the erased subject only
    assert SubjectKey.objects.get(pk=first[0]).wrapped is None
    assert SubjectKey.objects.filter(pk=after[0], erased_at__isnull=True).exists()
    assert personal.reveal_record(PredictionLog.objects.order_by("-created_at").first())[1] == KEYS


def test_remembered_keys_are_checked_again_in_one_query_once_their_time_is_up_not_made_again(
    personal_version, keyed, german, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """When SUBJECT_KEY_CACHE_SECONDS have passed, a process asks which of its remembered keys
    are still live (an erasure elsewhere): the live ones are kept as they are, with no new key
    made, wrapped or unwrapped."""
    import time

    def key_ids() -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):
            answer = serve(keyed, german)
        stored = orjson.loads(raw_row(answer["prediction_ids"][0].split(".")[0])[0])
        return [int(row["age"]["$enc"].split(":", 1)[0]) for row in stored]

    first = key_ids()
    made: list[Any] = []
    monkeypatch.setattr(subject_keys, "_make_keys", lambda *a: made.append(a) or {})
    monkeypatch.setattr(subject_keys, "_unwrap", lambda *a: made.append(a))
    later = time.monotonic() + settings.SUBJECT_KEY_CACHE_SECONDS + 1
    monkeypatch.setattr(subject_keys.time, "monotonic", lambda: later)
    assert key_ids() == first and made == []


def test_after_an_erasure_a_lookup_by_the_subjects_business_key_finds_nothing_and_proofs_verify(
    personal_version, keyed, german, api_client, auditor, risk_officer
):
    serve(keyed, german)
    seals.seal_predictions()
    api_client.force_authenticate(auditor)
    assert api_client.get("/api/v1/predictions/", {"business_key": "app-7733"}).json()["results"]
    api_client.force_authenticate(risk_officer)
    erased = api_client.post("/api/v1/subjects/erasure", {"model": "credit-risk", "subject": "app-7733"}, format="json")
    assert erased.status_code == 200
    api_client.force_authenticate(auditor)
    assert api_client.get("/api/v1/predictions/", {"business_key": "app-7733"}).json()["results"] == []
    assert api_client.get("/api/v1/predictions/", {"business_key": "app-7732"}).json()["results"]  # others kept
    call_command("verify_audit", stdout=io.StringIO())
    assert seals.verify_seals().ok


def test_a_destroyed_subject_key_put_back_is_refused_by_the_database_and_named_by_verification(
    personal_version, keyed, german, risk_officer
):
    from django.db import IntegrityError, transaction

    from serving.models import SubjectKey
    from tests.ledger import triggers_dropped

    serve(keyed, german)
    live = SubjectKey.objects.filter(erased_at__isnull=True).first()
    copy = bytes(live.wrapped)
    erasure.erase_subject(model_name="credit-risk", subject="app-7733", actor=risk_officer)
    erased = SubjectKey.objects.filter(erased_at__isnull=False).get()
    with pytest.raises(IntegrityError, match="an erased subject key stays erased"), transaction.atomic():
        SubjectKey.objects.filter(pk=erased.pk).update(wrapped=copy, erased_at=None)
    with triggers_dropped():  # a DBA restores the key from an earlier copy
        SubjectKey.objects.filter(pk=erased.pk).update(wrapped=copy, erased_at=None, erased_because="")
        with pytest.raises(CommandError) as failed:
            call_command("verify_audit", stdout=io.StringIO())
    assert f"serving.subjectkey:{erased.pk} differs from what audit event" in str(failed.value)
