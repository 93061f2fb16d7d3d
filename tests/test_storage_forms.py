"""Storage contract: published forms. Runs unchanged on SQLite and PostgreSQL (`any_store`)."""

import pytest

AT = "2026-11-20T02:00:00.000+00:00"


def form(form_id, version, title="厕所") -> dict:
    return {"id": form_id, "version": version, "title": title, "fields": [{"name": "ok"}]}


def publish(store, definition, sha=None) -> bool:
    return store.publish_form(definition, sha or f"sha-{definition['title']}", at=AT)


@pytest.fixture
def store(any_store):
    for definition in (form("toilet", 1), form("toilet", 2), form("tidiness", 1, "村容")):
        assert publish(any_store, definition)
    return any_store


def test_a_published_version_is_new_once_and_a_change_to_pull(store):
    assert not publish(store, form("toilet", 1))
    rows = store.rows("SELECT entity, entity_id, village_code, at FROM changes ORDER BY seq")
    assert [(r["entity"], r["entity_id"], r["village_code"], r["at"]) for r in rows] == [
        ("form", "toilet@1", None, AT),
        ("form", "toilet@2", None, AT),
        ("form", "tidiness@1", None, AT),
    ]


def test_a_published_version_never_changes(store):
    seq = store.last_seq()
    with pytest.raises(ValueError, match="toilet v1"):
        publish(store, form("toilet", 1, "改了"), sha="sha-other")
    assert store.form_definition("toilet", 1) == form("toilet", 1)
    assert store.last_seq() == seq


def test_one_definition_by_id_and_version(store):
    assert store.form_definition("toilet", 2) == form("toilet", 2)
    assert store.form_definition("toilet", 3) is None
    assert store.form_definition("nope", 1) is None


def test_definitions_by_change_log_keys(store):
    keys = iter(["toilet@2", "tidiness@1", "toilet@9", "nope@1"])
    assert store.form_definitions(keys) == [form("tidiness", 1, "村容"), form("toilet", 2)]
    assert store.form_definitions([]) == []


def test_every_form_by_id_and_version_and_one_forms_versions_newest_first(store):
    assert store.forms() == [form("tidiness", 1, "村容"), form("toilet", 1), form("toilet", 2)]
    assert store.form_versions("toilet") == [form("toilet", 2), form("toilet", 1)]
    assert store.form_versions("nope") == []
