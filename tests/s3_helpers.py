"""An S3 API on loopback for the tests: moto's standalone server (an emulator from PyPI, not a
real object store), started by the tests on a free port.

`moto_server` (session fixture) runs `python -m moto.server` as a subprocess; `s3_settings`
gives the app settings for a fresh bucket on it; `ThreadedMoto` runs moto in this process, for
tests that stop and restart the store (its data survive a restart, as a real store's would).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from media.s3_store import make_client

CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answers(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_server():
    """The endpoint URL of a moto S3 server subprocess on loopback."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client_for(endpoint_url: str):
    return make_client(endpoint_url=endpoint_url, region="us-east-1", **CREDENTIALS)


def new_bucket(endpoint_url: str) -> str:
    name = f"vc-{uuid.uuid4().hex[:20]}"
    client_for(endpoint_url).create_bucket(Bucket=name)
    return name


def s3_settings(endpoint_url: str, bucket: str) -> dict:
    """App settings for the photo store in `bucket` on `endpoint_url`."""
    return {
        "MEDIA_STORE": "s3",
        "S3_ENDPOINT_URL": endpoint_url,
        "S3_BUCKET": bucket,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
        "S3_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
        "S3_PREFIX": "vc/",
        "S3_ADDRESSING_STYLE": "path",
    }


class ThreadedMoto:
    """moto's server in a thread of this process on a fixed loopback port: `stop()` makes the
    store unreachable, `start()` brings it back with its buckets and objects."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_until_answers(self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
