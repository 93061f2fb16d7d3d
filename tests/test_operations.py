"""Operations: the /healthz and /readyz probes, and the request and application logs."""

import io
import json
import logging
import time

import pytest
from conftest import FakeClock, submission, toilet_answers

from server import create_app

SECRET_QUERY = "s3cret-query-value"


def app_with(folder, **config):
    return create_app(
        {
            "TESTING": True,
            "DATABASE": str(folder / "vc.db"),
            "MEDIA_ROOT": str(folder / "media"),
            "SECRET_KEY": "test",
            "CLOCK": FakeClock(),
            **config,
        }
    )


def test_healthz_answers_without_the_database(tmp_path):
    app = app_with(tmp_path, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_ready_with_the_database_and_the_photo_store(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {"status": "ok", "checks": {"database": "ok", "photo_store": "ok"}}
    assert "X-Request-ID" in response.headers


def test_readyz_names_an_unreachable_database_and_leaks_nothing(tmp_path):
    app = app_with(tmp_path, DATABASE_URL="postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    error = response.json["error"]
    assert error["code"] == "database_unavailable"
    assert error["checks"] == {"database": "unavailable", "photo_store": "ok"}
    assert response.headers["Retry-After"]
    body = response.get_data(as_text=True)
    assert "127.0.0.1" not in body and "nobody" not in body and "psycopg" not in body


def test_readyz_names_a_photo_store_it_cannot_write(app, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    app.config["MEDIA_PATH"] = str(blocker / "media")
    response = app.test_client().get("/readyz", headers={"X-Request-ID": "probe-42"})
    assert response.status_code == 503
    assert response.json["error"]["code"] == "photo_store_unavailable"
    assert response.json["error"]["checks"] == {"database": "ok", "photo_store": "unavailable"}
    # the cause goes to the log, with the request's id, not to the caller
    assert "not-a-folder" not in response.get_data(as_text=True)
    err = capsys.readouterr().err
    assert "photo store not ready" in err and "probe-42" in err


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def json_app(app, caplog):
    """The demo app, logging JSON lines at INFO."""
    from server import logs

    app.config["LOG_FORMAT"] = "json"
    logs.install_format(app)
    caplog.set_level(logging.INFO, logger="villagecheck")
    caplog.set_level(logging.INFO, logger="server")
    yield app
    app.config["LOG_FORMAT"] = "text"
    logs.install_format(app)


def test_one_json_line_per_request_names_the_route_not_the_path(json_app, capsys, toilets):
    from conftest import Phone

    client = json_app.test_client()
    phone = Phone(client, "inspector")
    item = submission(toilets[0], phone.clock(), answers=toilet_answers())
    assert phone.push([item]).status_code == 200
    capsys.readouterr()
    response = client.get(
        f"/api/v1/submissions/{item['id']}?token={SECRET_QUERY}",
        headers={**phone.headers, "X-Request-ID": "req-abc.123", "Cookie": "session=c00kie"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-abc.123"
    err = capsys.readouterr().err
    lines = [line for line in _json_lines(err) if line["logger"] == "villagecheck.access"]
    assert len(lines) == 1, err
    line = lines[0]
    assert line["request_id"] == "req-abc.123"
    assert line["route"] == "/api/v1/submissions/<submission_id>"
    assert line["method"] == "GET" and line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert isinstance(line["user_id"], int)
    for secret in (item["id"], phone.token, SECRET_QUERY, "c00kie", "Bearer"):
        assert secret not in err


def test_the_login_line_holds_no_password(json_app, capsys):
    from conftest import PASSWORDS

    response = json_app.test_client().post(
        "/api/v1/auth/login",
        json={"username": "inspector", "password": PASSWORDS["inspector"], "device_id": "d-1"},
    )
    assert response.status_code == 200
    err = capsys.readouterr().err
    (line,) = [x for x in _json_lines(err) if x["logger"] == "villagecheck.access"]
    assert line["route"] == "/api/v1/auth/login" and line["user_id"] is None
    assert PASSWORDS["inspector"] not in err and response.json["token"] not in err


@pytest.mark.parametrize(
    "given", ["", "a b", "x" * 129, "<script>", "id\u00e9", '{"level":"ERROR"}']
)
def test_an_unsafe_request_id_is_replaced(json_app, capsys, given):
    response = json_app.test_client().get("/app/", headers={"X-Request-ID": given})
    rid = response.headers["X-Request-ID"]
    assert rid != given and len(rid) == 32
    (line,) = [
        x for x in _json_lines(capsys.readouterr().err) if x["logger"] == "villagecheck.access"
    ]
    assert line["request_id"] == rid


def test_unknown_paths_are_logged_without_the_path(json_app, capsys):
    secret = "a" * 64
    assert json_app.test_client().get(f"/api/v1/nothing/{secret}").status_code == 404
    err = capsys.readouterr().err
    (line,) = [x for x in _json_lines(err) if x["logger"] == "villagecheck.access"]
    assert line["route"] is None and line["status"] == 404
    assert secret not in err


def test_successful_probes_are_not_logged_failing_ones_are(json_app, capsys, tmp_path):
    client = json_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert not _json_lines(capsys.readouterr().err)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    json_app.config["MEDIA_PATH"] = str(blocker / "media")
    assert client.get("/readyz").status_code == 503
    lines = _json_lines(capsys.readouterr().err)
    assert {x["logger"] for x in lines} == {"villagecheck.health", "villagecheck.access"}
    assert len({x["request_id"] for x in lines}) == 1
    warning = next(x for x in lines if x["logger"] == "villagecheck.health")
    assert warning["level"] == "WARNING" and "Traceback" in warning["exc"]


def test_text_format_is_one_readable_line(app, capsys, caplog):
    caplog.set_level(logging.INFO, logger="villagecheck")
    app.test_client().get("/app/", headers={"X-Request-ID": "rid-7"})
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "villagecheck.access" in x]
    assert "[rid-7] GET /app/ 302" in line and not line.startswith("{")


def test_log_format_auto_is_json_off_a_terminal_and_text_in_tests(tmp_path, monkeypatch):
    from server import logs

    app = app_with(tmp_path)
    assert logs.log_format(app) == "text"
    app.testing = False
    monkeypatch.setattr(logs.sys, "stderr", io.StringIO())
    assert logs.log_format(app) == "json"
    app.config["LOG_FORMAT"] = "xml"
    with pytest.raises(ValueError):
        logs.log_format(app)


def test_serve_writes_json_lines_only(tmp_path, demo_db):
    """A real `villagecheck serve` (stderr to a file, as under systemd): every line it logs
    after the banner is JSON, one access line per request, no raw path or query string."""
    import shutil

    import requests
    from live_serve import Serve

    shutil.copy(demo_db, tmp_path / "vc.db")
    with Serve(tmp_path, "--no-scheduler") as live:
        base = f"http://127.0.0.1:{live.port}"
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        response = requests.get(
            f"{base}/api/v1/auth/me?secret={SECRET_QUERY}",
            headers={"X-Request-ID": "live-1", "Authorization": "Bearer not-a-token"},
            timeout=10,
        )
        assert response.status_code == 401
        assert response.headers["X-Request-ID"] == "live-1"
        deadline = time.monotonic() + 10
        while "live-1" not in live.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        output = live.output()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[0].startswith("乡村巡检 服务已启动"), output
    logged = [json.loads(line) for line in lines[1:]]  # every line after the banner is JSON
    assert {line["logger"] for line in logged} >= {"gunicorn.error", "villagecheck.access"}
    ours = [line for line in logged if line.get("request_id") == "live-1"]
    assert [line["route"] for line in ours] == ["/api/v1/auth/me"], output
    assert SECRET_QUERY not in output and "not-a-token" not in output
    assert not [line for line in lines if "HTTP/1.1" in line], output
