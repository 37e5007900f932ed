"""Odd filter values are a 400 that says what is wrong, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["²", "٣٣", "9" * 30])
def test_a_version_filter_that_is_not_an_ascii_number_is_a_named_400(client, auditor, value):
    client.force_login(auditor)
    for path in ("/audit/predictions/", "/audit/exports/predictions.csv"):
        response = client.get(path, {"version": value})
        assert response.status_code == 400, (path, response.status_code)
        assert "version" in response.content.decode()


def test_nul_in_any_query_string_is_a_400_before_the_database(client, api_client, auditor, risk_officer):
    client.force_login(risk_officer)
    for path in ("/admin/governance/finding/?q=%00", "/admin/governance/versionreview/?status__exact=a%00b"):
        response = client.get(path)
        assert response.status_code == 400 and b"NUL" in response.content
    client.force_login(auditor)
    assert client.get("/audit/trail/?target=x%00").status_code == 400
    api_client.force_authenticate(auditor)
    response = api_client.get("/api/v1/predictions/?model=%00")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_filter"
