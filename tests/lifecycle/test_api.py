"""Reading the registry through the API, and the OpenAPI schema."""

from __future__ import annotations

import pytest
import yaml
from openapi_spec_validator import validate

from governance import workflow

pytestmark = pytest.mark.django_db


def test_models_list_and_detail_show_versions_and_schema(api_client, auditor, draft_version):
    api_client.force_authenticate(auditor)
    models = api_client.get("/api/v1/models/").json()
    assert [m["name"] for m in models] == ["credit-risk"]
    assert models[0]["production_version"] is None
    detail = api_client.get("/api/v1/models/credit-risk/").json()
    assert detail["versions"][0] == {**detail["versions"][0], "version": 1, "status": "draft"}
    version = api_client.get("/api/v1/models/credit-risk/versions/1/").json()
    assert version["artifact"]["sha256"] == draft_version.artifact_sha256
    assert version["lineage"]["code_commit"] == "3f2c9a1"
    assert version["checks"] == [] and version["decisions"] == []


def test_version_detail_shows_checks_named_as_fairlearn_names_them_and_decisions(
    api_client, auditor, risk_officer, data_scientist, draft_version, django_capture_on_commit_callbacks, eager_tasks
):
    with django_capture_on_commit_callbacks(execute=True):
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    workflow.approve_version(draft_version.pk, actor=risk_officer, justification="Pilot only.", override=True)
    api_client.force_authenticate(auditor)
    body = api_client.get("/api/v1/models/credit-risk/versions/1/").json()
    fairness = next(c for c in body["checks"] if c["kind"] == "fairness")
    sex = next(f for f in fairness["metrics"]["features"] if f["feature"] == "sex")
    assert set(sex["headline"]) == {
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
    }
    assert fairness["status"] == "failed" and fairness["policy"]["max_fairness_difference"] == 0.1
    assert body["decisions"][0] == {
        **body["decisions"][0],
        "kind": "approve",
        "by": "rita",
        "override": True,
        "void": False,
    }


def test_register_model_validates_the_name(api_client, data_scientist):
    api_client.force_authenticate(data_scientist)
    response = api_client.post(
        "/api/v1/models/", {"name": "Credit Risk!", "title": "x", "risk_tier": "low"}, format="json"
    )
    assert response.status_code == 400
    assert "lowercase" in response.json()["error"]["details"]["name"][0]
    ok = api_client.post("/api/v1/models/", {"name": "credit-risk", "title": "x", "risk_tier": "low"}, format="json")
    assert ok.status_code == 201
    again = api_client.post("/api/v1/models/", {"name": "credit-risk", "title": "x", "risk_tier": "low"}, format="json")
    assert again.status_code == 400 and "already exists" in again.json()["error"]["details"]["name"][0]


def test_unknown_model_and_version_are_404(api_client, auditor, draft_version):
    api_client.force_authenticate(auditor)
    assert api_client.get("/api/v1/models/nope/").status_code == 404
    assert api_client.get("/api/v1/models/credit-risk/versions/9/").status_code == 404
    assert api_client.get("/api/v1/models/nope/").json()["error"]["code"] == "not_found"


def test_outsider_gets_403_on_every_registry_endpoint(api_client, outsider, draft_version):
    api_client.force_authenticate(outsider)
    for url in ("/api/v1/models/", "/api/v1/models/credit-risk/", "/api/v1/models/credit-risk/versions/1/"):
        assert api_client.get(url).status_code == 403, url
    assert api_client.post("/api/v1/models/credit-risk/versions/1/submit").status_code == 403
    assert api_client.post("/api/v1/models/", {"name": "x", "title": "x", "risk_tier": "low"}).status_code == 403


def test_an_unbound_api_key_sees_only_servable_versions(api_client, draft_version, data_scientist):
    from serving.services import create_api_key

    _, raw = create_api_key(actor=None, name="scoring-client")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert api_client.get("/api/v1/models/credit-risk/").json()["versions"] == []
    assert api_client.get("/api/v1/models/credit-risk/versions/1/").status_code == 404


def test_the_openapi_schema_validates_as_openapi_3(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    spec = yaml.safe_load(response.content)
    assert spec["openapi"].startswith("3.")
    validate(spec)
    assert "/api/v1/models/{name}/versions/" in spec["paths"]
    body = spec["paths"]["/api/v1/models/{name}/versions/"]["post"]["requestBody"]["content"]
    assert "artifact" in str(body) or "multipart/form-data" in body


def test_the_api_docs_page_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"cdn.jsdelivr" not in response.content
