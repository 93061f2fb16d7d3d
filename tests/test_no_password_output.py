"""No command prints a password, except the demo logins with `serve --demo` and `load-demo`."""

import os
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PASSWORDS

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_banner(tmp_path, demo_db, *args) -> str:
    """What `villagecheck serve` prints before it serves (the process is stopped after)."""
    shutil.copy(demo_db, tmp_path / "vc.db")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VILLAGECHECK_DATABASE": str(tmp_path / "vc.db"),
        "VILLAGECHECK_MEDIA_ROOT": str(tmp_path / "media"),
        "VILLAGECHECK_SECRET_KEY": "banner-test",
    }
    command = "from server.cli import main; main()"
    port = str(free_port())
    process = subprocess.Popen(
        [sys.executable, "-c", command, "serve", "--port", port, "--no-scheduler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    output, deadline = b"", time.monotonic() + 30
    try:
        while f":{port}".encode() not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
    text = output.decode("utf-8", "replace")
    assert f":{port}" in text, text
    return text


def test_serve_prints_no_password_without_demo(tmp_path, demo_db):
    output = serve_banner(tmp_path, demo_db)
    assert not [p for p in PASSWORDS.values() if p in output], output


def test_serve_with_demo_prints_the_demo_logins(tmp_path, demo_db):
    output = serve_banner(tmp_path, demo_db, "--demo")
    assert PASSWORDS["admin"] in output


@pytest.mark.parametrize(
    "args",
    [
        ["create-user", "newbie", "--role", "supervisor", "--password", "S3cret-Pass-1"],
        ["reset-password", "supervisor", "--password", "S3cret-Pass-1"],
        ["reset-password", "supervisor", "--password", "S3cret-Pass-1", "--keep-tokens"],
    ],
)
def test_user_commands_never_echo_the_password(runner, args):
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "S3cret-Pass-1" not in result.output
