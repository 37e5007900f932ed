"""POST /api/v1/predictions/search: the prediction log's filters in a JSON body, so a business key
(a data subject) never travels in a URL; the query-string form (GET /api/v1/predictions/) stays."""

from __future__ import annotations

import pytest

from serving.services import create_api_key
from tests.serving.conftest import rows
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db


def test_a_business_key_lookup_in_a_post_body_finds_what_the_query_string_finds(
    production, keyed, german, api_client, auditor
):
    for key in ("APP-1", "APP-2"):
        assert predict(keyed, instances=rows(german, 1), business_keys=[key]).status_code == 200
    officer = create_api_key(actor=None, name="auditor-key", username=auditor.username)[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {officer}")
    by_get = api_client.get("/api/v1/predictions/", {"business_key": "APP-2"})
    by_post = api_client.post("/api/v1/predictions/search", {"business_key": "APP-2"}, format="json")
    assert by_get.status_code == 200 and by_post.status_code == 200, by_post.content
    assert [r["id"] for r in by_post.json()["results"]] == [r["id"] for r in by_get.json()["results"]]
    assert len(by_post.json()["results"]) == 1
    everything = api_client.post("/api/v1/predictions/search", {"model": "credit-risk", "outcome": "ok"}, format="json")
    assert len(everything.json()["results"]) == 2


def test_a_search_body_is_checked_and_the_search_is_for_auditors_and_officers(production, keyed, api_client, auditor):
    assert keyed.post("/api/v1/predictions/search", {}, format="json").status_code == 403  # a client key
    officer = create_api_key(actor=None, name="auditor-key", username=auditor.username)[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {officer}")
    bad = api_client.post("/api/v1/predictions/search", {"since": "yesterday"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_filter"
    assert api_client.post("/api/v1/predictions/search", [1], format="json").status_code == 400
    unknown = api_client.post("/api/v1/predictions/search", {"subject": "x"}, format="json")
    assert unknown.status_code == 400 and "subject" in unknown.json()["error"]["message"]
