"""The two database engines under test: a SQLite file, or a fresh database on a PostgreSQL
server named by VILLAGECHECK_TEST_POSTGRES (`python3 dev.py test` starts a throwaway cluster
and sets it). Without it, tests on PostgreSQL are skipped with the reason, never passed.

VILLAGECHECK_TEST_ENGINE=postgresql runs the app fixtures (the sync API, merge, supervisor
tests) on PostgreSQL too; dev.py does that as the second half of the test run.
"""

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from server.storage import database_url

ENGINES = ("sqlite", "postgresql")
NO_POSTGRES = (
    "PostgreSQL tests need VILLAGECHECK_TEST_POSTGRES=postgresql+psycopg://user@host:port/db"
    " (python3 dev.py test starts a throwaway cluster when PostgreSQL is installed)"
)


def postgres_server() -> str | None:
    return os.environ.get("VILLAGECHECK_TEST_POSTGRES") or None


def session_engine() -> str:
    """The engine the app fixtures run on in this test session."""
    engine = os.environ.get("VILLAGECHECK_TEST_ENGINE", "sqlite")
    if engine not in ENGINES:
        raise ValueError(f"VILLAGECHECK_TEST_ENGINE={engine!r}: sqlite or postgresql")
    return engine


def _admin(server: str) -> psycopg.Connection:
    url = make_url(server)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
    )


def create_database(template: str | None = None) -> str:
    """A new empty database (or a copy of `template`) on the test server; returns its URL."""
    server = postgres_server()
    if not server:
        pytest.skip(NO_POSTGRES)
    name = f"vc_{uuid.uuid4().hex[:12]}"
    with _admin(server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    with _admin(postgres_server()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_on(engine: str, folder: Path, template: str | None = None) -> str:
    """A URL of a new database on `engine`: a file in `folder`, or a PostgreSQL database."""
    if engine == "sqlite":
        return database_url(folder / "vc.db")
    return create_database(template)
