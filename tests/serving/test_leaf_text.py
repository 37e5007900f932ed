"""leaf_of() writes a record's metadata JSON directly (verification recomputes a leaf per record);
its bytes must stay exactly those of canonical_json() over the metadata dict, so every stored
leaf and MAC keeps verifying. Pure: no database."""

from __future__ import annotations

import hashlib
import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson

from core.canonical import canonical_json, canonical_number
from serving.log import leaf_of

HOSTILE = [
    "",
    "plain",
    'quote " and \\ backslash',
    "control \x01\x08\x0c\n\r\t\x1f\x7f",
    "line sep \u2028 para \u2029",
    "accents éàü, CJK 漢字, emoji 😀",
    "=1+1",
    "\ufffd nul replaced",
    "</script>",
]
NUMBERS = [0, 0.0, -0.0, 1, 1.5, 0.1, 1e-7, 1e-5, 123456.789, 1e16, 1e22, 2**53 + 1, 3.14159e300]


def reference(values: tuple) -> bytes:
    """The leaf as it was computed before leaf_of() wrote the JSON itself."""
    (public_id, created_at, model, version, version_id, caller, request_id, protocol, outcome, reason, n_rows,
     engine, latency_ms, inputs_json, outputs_json, *rest) = values  # fmt: skip
    business_keys_json = rest[0] if rest else ""
    source, batch_job_id, batch_chunk = (*rest[1:4], None, None, None)[:3]
    meta = {
        "id": str(public_id),
        "created_at": created_at.isoformat(),
        "model": model,
        "version": version,
        "version_id": version_id,
        "caller": caller,
        "request_id": request_id,
        "protocol": protocol,
        "outcome": outcome,
        "reason": reason,
        "n_rows": n_rows,
        "engine": engine,
        "latency_ms": canonical_number(latency_ms),
    }
    if business_keys_json:
        meta["business_keys"] = orjson.loads(business_keys_json)
    if source and source != "api":
        meta["source"] = source
        if batch_job_id is not None:
            meta["batch"] = {"job": batch_job_id, "chunk": batch_chunk}
    blob = "\x1e".join((canonical_json(meta), inputs_json, outputs_json))
    return hashlib.sha256(b"\x00" + blob.encode()).digest()


def test_the_direct_leaf_text_is_canonical_json_on_hostile_values() -> None:
    rng = random.Random(6962)
    moments = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 6, 1, tzinfo=timezone(timedelta(hours=2))),
    ]
    sources = [("api", None, None), ("batch", 7, 3), ("batch", 7, None), ("shadow", None, None), ("", None, None)]
    keys = ["", orjson.dumps(["APP-1", "h:abc|1:xyz"]).decode(), orjson.dumps(["é\u2028", 'a"b']).decode()]
    checked = 0
    for text, number, moment, (source, job, chunk), business_keys in itertools.product(
        HOSTILE, NUMBERS, moments, sources, keys
    ):
        values = (
            uuid.UUID(int=rng.getrandbits(128)),
            moment,
            text,
            rng.choice([None, 1, 12]),
            rng.choice([None, 5]),
            text[::-1],
            text,
            "v1",
            rng.choice(["ok", "invalid"]),
            text,
            rng.choice([0, 1, 1000]),
            rng.choice(["", "onnx"]),
            number,
            '[{"age":{"$enc":"1:AAAA","$row":1},"name":"' + text.replace('"', "").replace("\\", "") + '"}]',
            "{}",
            business_keys,
            source,
            job,
            chunk,
        )
        assert leaf_of(values) == reference(values), values
        checked += 1
    assert checked > 5000


def test_values_of_other_types_take_the_general_path_with_the_same_leaf() -> None:
    """A bool, a str id or a short tuple (a record from before business keys) hash as always."""
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    base = (uuid.uuid4(), moment, "m", 1, 2, "c", "r", "v1", "ok", "", 1, "", 0.5, "[]", "{}")
    odd = [
        base,  # no business keys, source or batch columns
        (*base, ""),
        (*base[:3], True, *base[4:], "", "api", None, None),
        (*base[:10], 1.0, *base[11:], "", "api", None, None),  # n_rows a float
        (str(base[0]), *base[1:], "", "batch", "7", 1),  # a job id as text
    ]
    for values in odd:
        assert leaf_of(values) == reference(values), values


def test_mac_matches_is_hmac_sha256_under_the_log_key(settings) -> None:
    import hmac

    from serving import log

    for key in ("k", "x" * 64, "long key " * 20):
        settings.LOG_MAC_KEY = key
        log.forget_mac_key()
        for leaf in (b"", b"\x00leaf", hashlib.sha256(b"x").digest()):
            expected = hmac.new(key.encode(), leaf, hashlib.sha256).hexdigest()
            assert log.mac_of(leaf) == expected and log.mac_matches(leaf, expected)
            assert not log.mac_matches(leaf, "0" * 64)
    log.forget_mac_key()
