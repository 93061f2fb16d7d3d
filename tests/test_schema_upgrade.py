"""An SQLite file made by older code, upgraded in place, has the schema a fresh database gets
from the metadata: the same tables, columns and indexes (so later revisions build on one
shape, whichever way a database came to schema 5)."""

import threading

from conftest import version_3_database
from sqlalchemy import inspect

from server.storage import SCHEMA_VERSION, connect


def shape(store) -> dict:
    found = inspect(store.conn)
    return {
        table: {
            "columns": sorted(c["name"] for c in found.get_columns(table)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(table)
            ),
            "primary key": found.get_pk_constraint(table)["constrained_columns"],
        }
        for table in sorted(found.get_table_names())
    }


def test_an_upgraded_version_3_file_has_the_shape_of_a_fresh_database(tmp_path):
    old = version_3_database(tmp_path / "old.db")
    assert old.migrate() == SCHEMA_VERSION
    fresh = connect(tmp_path / "fresh.db")
    assert fresh.migrate() == SCHEMA_VERSION
    upgraded, created = shape(old), shape(fresh)
    assert upgraded.keys() == created.keys()
    for table in created:
        assert upgraded[table] == created[table], table
    old.close()
    fresh.close()


def test_servers_starting_at_once_on_an_empty_database_create_the_schema_once(engine_url):
    stores = [connect(engine_url) for _ in range(4)]
    start, reached, failed = threading.Barrier(4), [], []

    def migrate(store):
        start.wait(10)
        try:
            reached.append(store.migrate())
        except Exception as exc:  # noqa: BLE001 - the test reports whatever went wrong
            failed.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failed == [] and reached == [SCHEMA_VERSION] * 4
    assert stores[0].scalar("SELECT count(*) FROM alembic_version") == 1
    for store in stores:
        store.close()
