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

import collections
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import requests
import schemathesis
from attack_helpers import SPEC_PATH, LiveServer
from conftest import YUNYU, photo, submission
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode

from server.demo import demo_data
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

# 5xx findings being fixed by other helpers (issue 8); the lead removes entries once merged.
KNOWN_5XX = {
    "POST /api/v1/sync/push": "finding 4/9: malformed items answer 500",
    "POST /api/v1/submissions/{submission_id}/review": "finding 9: non-string review fields",
    "PATCH /api/v1/media/{sha256}": "finding 9: Upload-Offset/Upload-Length like '²'",
    "GET /api/v1/sync/pull": "finding 9: integers beyond 64 bits reach SQLite",
    "DELETE /api/v1/auth/tokens/{token_id}": "finding 9: a token id beyond 64 bits reaches SQLite",
}


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
    project.phases.update(phases=["examples", "fuzzing"])
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
    if not errors:
        return
    counts = collections.Counter((e["operation"], e["cause"], e["where"]) for e in errors)
    lines = [f"{n:5d}  {op}  {cause}  [{where}]" for (op, cause, where), n in counts.most_common()]
    print("\n5xx answers by cause:\n" + "\n".join(lines))
    (ARTIFACTS / "fuzz_5xx.json").write_text(
        json.dumps(errors, ensure_ascii=False, indent=1), encoding="utf-8"
    )


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
    live.statuses[f"{case.operation.label} {response.status_code}"] += 1
    if response.status_code < 500:
        return
    label = case.operation.label
    stored = live.fingerprint() != before
    error = live.record_5xx(label, response.status_code, stored)
    if COLLECT:
        return
    if label in KNOWN_5XX and not stored:
        pytest.xfail(f"{KNOWN_5XX[label]}: {error['cause']}")
    pytest.fail(
        f"{response.status_code} from {label}{' and it stored something' if stored else ''}\n"
        f"{case.as_curl_command()}\n{response.text[:500]}\n{error['traceback']}"
    )
