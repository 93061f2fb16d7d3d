"""schemathesis against docs/openapi.yaml on a live `villagecheck serve`: no 5xx, no partial write.

The server is a real subprocess on 127.0.0.1 with the demo county, a submission and an
unuploaded photo of its own, so fuzzed bodies reach the review, push and upload code rather
than stopping at "not found". Path parameters are fixed to those records; bodies, queries and
headers are generated, valid (positive) and schema-violating (negative), with a fixed seed.

Every answer must be below 500; when one is not, the test also reports whether the request
left anything behind (records, change log, reviews, photos on disk), which must never happen.

CI runs a few examples per operation; `VILLAGECHECK_FUZZ_EXAMPLES=500` (and optionally
`VILLAGECHECK_FUZZ_SEED`) runs a larger campaign on demand, and `VILLAGECHECK_FUZZ_COLLECT=1`
keeps going after each 5xx so that tests/artifacts/fuzz_5xx.json counts them all by cause.
"""

import base64
import collections
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
import schemathesis
from attack_helpers import SPEC_PATH, LiveServer
from conftest import PASSWORDS, YUNYU, photo, submission, toilet_answers
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks
from test_supervisor import login_page

from server.demo import demo_data
from sync import protocol
from sync.clock import Clock, encode

EXAMPLES = int(os.environ.get("VILLAGECHECK_FUZZ_EXAMPLES", "30"))
# Keep going after a 5xx and only count it: for a campaign whose report lists every cause.
COLLECT = os.environ.get("VILLAGECHECK_FUZZ_COLLECT") == "1"
SEED = int(os.environ.get("VILLAGECHECK_FUZZ_SEED", "20261120"))
FUZZ_USER = "supervisor"  # may call every operation, in 桐浦乡's three villages
THROWAWAY_USER = "inspector2"  # logs out and revokes its own tokens, never FUZZ_USER's
FACILITY_ID = next(f["id"] for f in demo_data()["facilities"] if f["village"] == YUNYU)
SUBMISSION_ID = "0f0f0f0f-1111-4222-8333-444455556666"
PHOTO_SHA = hashlib.sha256(b"a photo the fuzzer may upload").hexdigest()
ARTIFACTS = Path(__file__).parent / "artifacts"
LOGIN = "/api/v1/auth/login"
CHINESE = re.compile(r"[\u4e00-\u9fff]")  # every error message speaks to a village cadre

# The spec must be true: every status, content type, body and header the server answers is
# documented, and a method a route lacks gets 405 with `Allow`.
CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.unsupported_method,
]


def _config() -> schemathesis.Config:
    config = schemathesis.Config()
    config.update(seed=SEED, max_failures=None)
    project = config.projects.default
    project.generation.update(
        max_examples=EXAMPLES,
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        deterministic=True,
        database="none",
    )
    project.phases.update(phases=["examples", "coverage", "fuzzing"])
    project.update(
        parameters={
            "facility_id": FACILITY_ID,
            "submission_id": SUBMISSION_ID,
            "sha256": PHOTO_SHA,
        }
    )
    return config


# Photo chunks are raw bytes under tus' media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
schema = schemathesis.openapi.from_path(SPEC_PATH, config=_config())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("fuzz"))
    try:
        _seed(server)
        yield server
    finally:
        server.stop()
        _report(server)


def _seed(server: LiveServer) -> None:
    """The submission and the photo the fixed path parameters name."""
    clock = encode(Clock(int(time.time() * 1000), 1, f"seed-{FUZZ_USER}"))
    item = submission(FACILITY_ID, clock, sub_id=SUBMISSION_ID)
    item["answers"]["photo_outside"] = [photo(PHOTO_SHA)]
    result = server.push(FUZZ_USER, [item])["results"][0]
    assert result["status"] == "waiting_for_photos", result


def _report(server: LiveServer) -> None:
    """Answers by operation and status, and 5xx by cause: printed and kept in tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz_statuses.json").write_text(
        json.dumps(dict(sorted(server.statuses.items())), indent=1), encoding="utf-8"
    )
    errors = server.errors
    (ARTIFACTS / "fuzz_5xx.json").write_text(  # written every run, so none is left stale
        json.dumps(errors, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    if not errors:
        return
    counts = collections.Counter((e["operation"], e["cause"], e["where"]) for e in errors)
    lines = [f"{n:5d}  {op}  {cause}  [{where}]" for (op, cause, where), n in counts.most_common()]
    print("\n5xx answers by cause:\n" + "\n".join(lines))


def _headers(case, live: LiveServer) -> dict:
    """Who calls: the fuzz user, or for token-ending operations a throwaway login."""
    if case.operation.label in (
        "POST /api/v1/auth/logout",
        "DELETE /api/v1/auth/tokens/{token_id}",
    ):
        token = live.login(THROWAWAY_USER)
    else:
        token = live.token(FUZZ_USER)
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    max_examples=EXAMPLES,
)
def test_no_server_error_and_nothing_stored_from_one(case, live):
    headers = _headers(case, live)
    before = live.fingerprint()
    try:
        response = case.call(base_url=live.url, headers=headers, timeout=60)
    except requests.ConnectionError as exc:
        pytest.fail(f"server dropped {case.operation.label}: {exc}\n{case.as_curl_command()}")
    method = response.request.method  # the coverage phase also tries other methods
    live.statuses[f"{method} {case.operation.path} {response.status_code}"] += 1
    if (method, case.operation.path, response.status_code) == ("POST", LOGIN, 200):
        user, password = case.body.get("username"), case.body.get("password")
        assert PASSWORDS.get(user.strip()) == password, f"logged in with {case.body}"
    if response.status_code < 500:
        case.validate_response(response, checks=CONFORMANCE)
        if response.status_code >= 400 and method != "HEAD":
            assert CHINESE.search(response.json()["error"]["message"]), response.text
        return
    label = case.operation.label
    stored = live.fingerprint() != before
    error = live.record_5xx(label, response.status_code, stored)
    if COLLECT:
        return
    pytest.fail(
        f"{response.status_code} from {label}{' and it stored something' if stored else ''}\n"
        f"{case.as_curl_command()}\n{response.text[:500]}\n{error['traceback']}"
    )


# -- hostile inputs the generator rarely makes: each cause of finding 9, by hand ---------------


def _push(items: str) -> str:
    """A push body around raw item JSON (so it may hold what json.dumps would not write)."""
    return '{"device_id": "hostile", "items": [' + items + "]}"


def _raw_item(item: dict, overrides: dict) -> str:
    """An item's JSON with some members replaced by raw JSON text."""
    raw = {k: json.dumps(v, ensure_ascii=False) for k, v in item.items()}
    raw.update(overrides)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in raw.items()) + "}"


def _submission_json(**overrides) -> str:
    clock = encode(Clock(int(time.time() * 1000), 1, "hostile"))
    return _raw_item(submission(FACILITY_ID, clock), overrides)


def _answers_with(**raw) -> str:
    """Good toilet answers with some answers replaced by raw JSON text."""
    answers = toilet_answers(**{name: f"@{name}@" for name in raw})
    text = json.dumps(answers, ensure_ascii=False)
    for name, value in raw.items():
        text = text.replace(f'"@{name}@"', value)
    return text


def _facility_json(**overrides) -> str:
    item = {
        "type": "facility",
        "id": str(uuid.uuid4()),
        "village": YUNYU,
        "kind": "toilet",
        "name": "韦家户厕",
        "lat": 24.7,
        "lon": 109.3,
        "clock": encode(Clock(int(time.time() * 1000), 1, "hostile")),
    }
    return _raw_item(item, overrides)


def _cursor(live: LiveServer, seq: str) -> str:
    me = requests.get(
        live.url + "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {live.token(FUZZ_USER)}"},
        timeout=30,
    ).json()
    scope = protocol.scope_key(me["user"]["id"], me["villages"])
    return base64.urlsafe_b64encode(f"v1:{seq}:{scope}".encode()).decode().rstrip("=")


JSON = {"Content-Type": "application/json"}
SURROGATE = '"\\ud83d"'  # half an emoji, as JSON text
CHUNK = {"Content-Type": "application/offset+octet-stream"}
HOSTILE = {
    "answers nested 1000 deep": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_submission_json(answers='{"a": ' + "[" * 1000 + "]" * 1000 + "}")),
    ),
    "body nested 100000 deep": ("POST", "/api/v1/sync/push", JSON, lambda live: "[" * 100_000),
    "lone surrogate in an answer": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_submission_json(answers=_answers_with(notes=SURROGATE))),
    ),
    "lone surrogate in a facility name": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_facility_json(name=SURROGATE)),
    ),
    "lone surrogate as a username": (
        "POST",
        "/api/v1/auth/login",
        JSON,
        lambda live: '{"username": "\\udc00", "password": "x"}',
    ),
    "bad item id": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_submission_json(id="[1]")),
    ),
    "village given as a list": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_facility_json(village=f'["{YUNYU}"]')),
    ),
    "record given as an object": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_submission_json(record='{"id": "x"}')),
    ),
    "form version 2**64": (
        "POST",
        "/api/v1/sync/push",
        JSON,
        lambda live: _push(_submission_json(version=str(2**64))),
    ),
    "review decision as a list": (
        "POST",
        f"/api/v1/submissions/{SUBMISSION_ID}/review",
        JSON,
        lambda live: '{"decision": ["approve"]}',
    ),
    "review reason as a number": (
        "POST",
        f"/api/v1/submissions/{SUBMISSION_ID}/review",
        JSON,
        lambda live: '{"decision": "reject", "reason": 5}',
    ),
    "Upload-Offset '²'": (
        "PATCH",
        f"/api/v1/media/{PHOTO_SHA}",
        {**CHUNK, "Upload-Offset": "²", "Upload-Length": "10"},
        lambda live: b"\xff\xd8\xff",
    ),
    "Upload-Length of 5000 digits": (
        "PATCH",
        f"/api/v1/media/{PHOTO_SHA}",
        {**CHUNK, "Upload-Offset": "0", "Upload-Length": "9" * 5000},
        lambda live: b"\xff\xd8\xff",
    ),
    "pull cursor beyond 64 bits": (
        "GET",
        lambda live: "/api/v1/sync/pull?since=" + _cursor(live, "9" * 30),
        {},
        lambda live: None,
    ),
    "token id beyond 64 bits": ("DELETE", "/api/v1/auth/tokens/" + "9" * 30, {}, lambda live: None),
}


@pytest.mark.parametrize(
    "name",
    [n for n in HOSTILE],
)
def test_hostile_input_gets_a_4xx_and_stores_nothing(name, live):
    method, path, headers, body = HOSTILE[name]
    path = path(live) if callable(path) else path
    data = body(live)
    before = live.fingerprint()
    response = requests.request(
        method,
        live.url + path,
        data=data.encode("utf-8") if isinstance(data, str) else data,
        headers={**headers, "Authorization": f"Bearer {live.token(FUZZ_USER)}"},
        timeout=60,
    )
    stored = live.fingerprint() != before
    if response.status_code >= 500:
        error = live.record_5xx(f"{method} {path[:60]}", response.status_code, stored)
        pytest.fail(f"{name}: {response.status_code}\n{error['traceback']}")
    assert not stored or response.status_code < 400, f"{name}: refused but stored"
    if response.status_code >= 400:
        assert response.headers["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert re.fullmatch(r"[a-z_]+", error["code"]) and CHINESE.search(error["message"])
    else:
        results = response.json().get("results", [])
        assert all(r["status"] == "invalid" for r in results), results


def test_an_http_error_keeps_its_headers_inside_the_envelope(client):
    """A 405 names the methods the route takes (RFC 9110), in the JSON envelope."""
    response = client.delete("/api/v1/auth/me")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"].split(", ")


DESK_QUERIES = [
    "/desk/queue?page=" + "9" * 30,
    "/desk/queue?page=-3&village=%00&form=%ff",
    "/desk/conflicts?page=" + "9" * 30,
    "/desk/tasks?month=9999-99",
    "/desk/tasks?month=" + "9" * 30,
    "/desk/indicators?month=0000-00",
    "/desk/exports/forms/toilet.csv?month=2026-13",
    "/desk/exports/facilities.geojson?kind=%ff",
    "/desk/submissions/" + "9" * 5000,
]


@pytest.mark.parametrize(
    "url",
    [u for u in DESK_QUERIES],
    ids=lambda u: u[:60],
)
def test_hostile_desk_queries_get_no_server_error(client, url):
    login_page(client, "supervisor")
    response = client.get(url)
    assert response.status_code < 500, url


def test_a_clock_at_the_end_of_time_stops_nobody(make_phone, facilities, store):
    """The largest encodable clock in a batch: the good item is stored once, the batch answers,
    and every other phone still pulls and pushes."""
    attacker, other = make_phone("inspector"), make_phone("secretary")
    toilet = facilities[(YUNYU, "toilet")]["id"]
    good = submission(toilet, attacker.clock())
    evil = submission(toilet, f"9999999999999-ffff-{attacker.device_id}")
    pushed = attacker.push([good, evil])
    stored = store.submission(good["id"]) is not None
    assert pushed.status_code < 500 or not stored, "a 5xx answer, yet the good item was stored"
    assert pushed.status_code == 200, pushed.json
    assert other.pull().status_code == 200
    assert other.push([submission(toilet, other.clock())]).status_code == 200
