"""The `villagecheck` command, the settings and the documentation that describes them."""

import re
from pathlib import Path

import pytest
from conftest import START, FakeClock

from server import create_app
from server.cli import main
from server.settings import SETTINGS
from server.storage import connect

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def empty_app(tmp_path):
    return create_app(
        {
            "TESTING": True,
            "DATABASE": str(tmp_path / "new.db"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "CLOCK": FakeClock(START),
        }
    )


def invoke(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_init_db_creates_the_database_and_publishes_the_forms_once(empty_app):
    first = invoke(empty_app, "init-db")
    assert first.exit_code == 0, first.output
    assert "发布表单 toilet v1" in first.output
    store = connect(empty_app.config["DATABASE_PATH"])
    assert store.schema_version() >= 1
    assert {f["id"] for f in store.forms()} >= {"toilet", "tidiness", "monthly_task"}
    assert store.scalar("PRAGMA journal_mode") == "wal"
    store.close()
    second = invoke(empty_app, "init-db")
    assert "发布表单" not in second.output


def test_load_demo_fills_an_empty_database_and_prints_logins(empty_app):
    result = invoke(empty_app, "load-demo")
    assert result.exit_code == 0, result.output
    assert "Field-Team1-2026" in result.output
    store = connect(empty_app.config["DATABASE_PATH"])
    assert [v["name"] for v in store.villages()][0] == "云屿村"
    assert store.tasks("450222101001")
    store.close()
    again = invoke(empty_app, "load-demo")
    assert again.exit_code != 0 and "不是空的" in again.output


def test_create_user_hashes_the_password_and_assigns_villages(empty_app):
    invoke(empty_app, "load-demo")
    result = invoke(
        empty_app,
        "create-user",
        "liming",
        "--role",
        "inspector",
        "--display-name",
        "黎明",
        "--village",
        "450222101001",
        "--password",
        "A-long-Pass-42",
    )
    assert result.exit_code == 0, result.output
    store = connect(empty_app.config["DATABASE_PATH"])
    user = store.user(username="liming")
    assert user["password_hash"].startswith("scrypt:")
    assert store.assigned_villages(user["id"]) == ["450222101001"]
    store.close()
    login = empty_app.test_client().post(
        "/api/v1/auth/login", json={"username": "liming", "password": "A-long-Pass-42"}
    )  # an admin chose the password: the user must choose their own first (issue 13)
    assert login.status_code == 403
    assert login.json["error"]["code"] == "password_change_required"


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspector", "--role", "inspector", "--password", "A-long-Pass-42"], "已存在"),
        (
            ["x1", "--role", "inspector", "--village", "999", "--password", "A-long-Pass-42"],
            "没有这些村",
        ),
        (["x2", "--role", "inspector", "--password", "short"], "至少 10 位"),
    ],
)
def test_create_user_refuses_bad_input(empty_app, args, message):
    invoke(empty_app, "load-demo")
    result = invoke(empty_app, "create-user", *args)
    assert result.exit_code != 0
    assert message in result.output


def test_import_villages_from_csv(empty_app, tmp_path):
    path = tmp_path / "villages.csv"
    path.write_text(
        "代码,村名,乡镇,县,县类别,户数,纬度,经度\n"
        "450222103001,龙头村,龙头镇,柳城县,2,188,24.70,109.20\n"
        "450222103002,沙埔村,龙头镇,柳城县,2,240,,\n",
        encoding="utf-8-sig",
    )
    result = invoke(empty_app, "import-villages", str(path), "--datum", "wgs84")
    assert result.exit_code == 0, result.output
    assert "已导入 2 个村" in result.output
    store = connect(empty_app.config["DATABASE_PATH"])
    assert [v["name"] for v in store.villages()] == ["龙头村", "沙埔村"]
    store.close()


def test_import_villages_refuses_the_whole_file_on_any_bad_row(empty_app, tmp_path):
    path = tmp_path / "villages.csv"
    path.write_text(
        "code,name,township,county,county_class\n"
        "450222103001,龙头村,龙头镇,柳城县,2\n"
        "450222103002,沙埔村,龙头镇,柳城县,5\n",
        encoding="utf-8",
    )
    result = invoke(empty_app, "import-villages", str(path))
    assert result.exit_code != 0
    assert "第 3 行" in result.output
    store = connect(empty_app.config["DATABASE_PATH"])
    assert store.villages() == []
    store.close()


def test_every_command_has_help():
    for name, command in main.commands.items():
        assert command.help, f"{name} has no help"


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in ("serve", "init-db", "create-user", "import-villages", "load-demo"):
        assert f"villagecheck {name}" in readme


def test_every_setting_is_documented():
    documented = (ROOT / "docs" / "SETTINGS.md").read_text()
    for setting in SETTINGS:
        assert setting.help
        assert re.search(rf"`{setting.name}`", documented), setting.name


def test_readme_starts_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    assert lines[1:5] == ["```", "python3 dev.py run", "python3 dev.py test", "```"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci
