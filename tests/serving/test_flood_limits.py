"""Flood limits: a refused request logs a bounded sample of its rows with their count
and digest; the per-key rate is counted with atomic increments in the shared cache; a daily
quota per key answers 429 daily_quota_exceeded with Retry-After, and is logged."""

from __future__ import annotations

import hashlib
import json
import sys
import threading

import pytest
from django.core.cache import cache

from serving import throttling
from serving.models import PredictionLog
from tests.serving.conftest import rows
from tests.serving.test_predict import infer, predict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_refused_5000_row_request_logs_ten_rows_with_the_count_and_digest(keyed, production, german):
    instances = rows(german, 1) * 5000
    instances[4999] = {**instances[4999], "age": "old"}  # one bad value, at the end
    response = predict(keyed, instances=instances)
    assert response.status_code == 400, response.content
    record = PredictionLog.objects.get(outcome="invalid")
    logged = record.inputs
    assert logged["rows_sent"] == 5000 and logged["sample"] == instances[:10]
    sent = json.dumps({"instances": instances}).encode()  # (the body as test_predict.predict sends it)
    assert logged["sha256"] == hashlib.sha256(sent).hexdigest() and logged["bytes"] == len(sent)
    assert logged["digest_of"] == "request body"
    assert len(record.inputs_json) < 3000  # not the 5000 rows
    assert record.reason.startswith("invalid_input: ")  # one reason text per cause, as before


def test_small_refusals_still_log_their_rows_whole_and_v2_logs_its_rows(keyed, production, german, settings):
    three = rows(german, 3)
    three[1]["age"] = "old"
    assert predict(keyed, instances=three).status_code == 400
    assert PredictionLog.objects.get(outcome="invalid", protocol="v1").inputs == three
    settings.REFUSED_LOG_SAMPLE_ROWS = 2
    response = infer(keyed, three)
    assert response.status_code == 400
    logged = PredictionLog.objects.get(outcome="invalid", protocol="v2").inputs
    assert logged["rows_sent"] == 3 and len(logged["sample"]) == 2


def test_a_refusal_with_huge_values_logs_no_more_than_the_sample_allows(keyed, production, german):
    huge = [{**rows(german, 1)[0], "purpose": "x" * 200_000, "age": "old"}]
    assert predict(keyed, instances=huge).status_code == 400
    logged = PredictionLog.objects.get(outcome="invalid").inputs
    assert logged["rows_sent"] == 1 and logged["sample"] == [] and logged["bytes"] > 200_000


def test_rate_counts_are_atomic_increments_in_the_shared_cache(keyed, production, german, settings, monkeypatch):
    """Every process reaches the counters through the cache: read-modify-write (get then set) lost
    counts under concurrency, so only add/incr/decr/get may touch them."""
    settings.SERVING_RATE_PER_KEY = "100/hour"
    from django.core.cache.backends.locmem import LocMemCache

    calls: list[str] = []
    for name in ("add", "incr", "decr", "get", "set"):  # (each thread has its own cache object)
        real = getattr(LocMemCache, name)

        def spy(self, *args, _name=name, _real=real, **kwargs):
            calls.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(LocMemCache, name, spy)
    throttle = throttling.ApiKeyRateThrottle()
    request = type("R", (), {"auth": production_key(keyed), "method": "GET"})()
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    allowed: list[bool] = []
    try:
        workers = [
            threading.Thread(target=lambda: allowed.extend(throttle.allow_request(request, None) for _ in range(40)))
            for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(before)
    assert allowed.count(True) == 100 and allowed.count(False) == 220
    assert "set" not in calls and "incr" in calls


def production_key(client) -> object:
    from serving.models import ApiKey

    return ApiKey.objects.get(name="scoring-client")


def test_a_daily_quota_gives_429_with_its_code_and_retry_after_and_is_logged(
    keyed, production, german, settings, monkeypatch
):
    settings.API_KEY_DAILY_QUOTA = 3
    clock = [20_834 * 86_400 + 3600.0]  # 01:00 UTC
    monkeypatch.setattr(throttling.time, "time", lambda: clock[0])
    answered = [predict(keyed, instances=rows(german, 1)).status_code for _ in range(3)]
    assert answered == [200, 200, 200]
    refused = predict(keyed, instances=rows(german, 1))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "daily_quota_exceeded"
    assert "quota of 3 prediction requests" in refused.json()["error"]["message"]
    assert refused["Retry-After"] == str(23 * 3600)  # until midnight UTC
    v2 = infer(keyed, rows(german, 1))
    assert v2.status_code == 429 and "quota of 3" in v2.json()["error"] and v2["Retry-After"] == str(23 * 3600)
    logged = PredictionLog.objects.filter(outcome="refused").order_by("pk")
    assert [r.protocol for r in logged] == ["v1", "v2"]
    assert all(r.reason.startswith("daily_quota_exceeded: ") and r.model_name == "credit-risk" for r in logged)
    assert all(r.api_key.name == "scoring-client" for r in logged)
    assert keyed.get("/v2/models/credit-risk").status_code == 200  # metadata is not a prediction
    clock[0] += 23 * 3600  # the next day
    assert predict(keyed, instances=rows(german, 1)).status_code == 200
    settings.API_KEY_DAILY_QUOTA = 0  # unlimited
    assert all(predict(keyed, instances=rows(german, 1)).status_code == 200 for _ in range(4))


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe is closed


def test_with_the_shared_cache_down_predictions_are_answered_and_logged_counted_per_process(
    keyed, production, german, settings, caplog
):
    from django.test import override_settings

    redis_down = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    settings.API_KEY_DAILY_QUOTA = 2
    throttling.reset_fallback()
    with override_settings(CACHES=redis_down), caplog.at_level("WARNING", logger="serving.throttling"):
        first = predict(keyed, instances=rows(german, 1))
        second = infer(keyed, rows(german, 1))
        third = predict(keyed, instances=rows(german, 1))
    assert first.status_code == 200, first.content
    assert second.status_code == 200, second.content
    # the quota still holds, counted in this process
    assert third.status_code == 429 and third.json()["error"]["code"] == "daily_quota_exceeded"
    assert PredictionLog.objects.filter(outcome="ok").count() == 2
    assert PredictionLog.objects.filter(outcome="refused", reason__startswith="daily_quota_exceeded").count() == 1
    assert "counted per process" in caplog.text
    throttling.reset_fallback()
