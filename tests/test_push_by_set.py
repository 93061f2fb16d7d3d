"""Push stores a batch by set (server/push.py): the same records and conflicts as pushing the
items one at a time, a fixed number of statements whatever the batch's size, and an item the
database refuses is answered `failed` while the rest of the batch is stored."""

import json
import random

import pytest
from conftest import START, YUNYU, Phone, app_on, demo_copy, submission, toilet_answers
from engines import drop_database, session_engine
from sqlalchemy import event

from server.storage import connect
from server.storage.core import engine_for
from sync.clock import Clock, encode

START_MS = int(START.timestamp() * 1000)


def reports(toilets, rng, count):
    """Offline phones' reports on a few toilets over the last four days, disagreeing now and
    then."""
    out = []
    for n in range(count):
        device = f"phone-{n % 3}"
        out.append(
            submission(
                rng.choice(toilets),
                encode(Clock(START_MS - rng.randrange(0, 4 * 86_400_000), n, device)),
                sub_id=f"00000000-0000-4000-8000-{n:012d}",
                answers=toilet_answers(
                    sanitary=rng.random() < 0.5,
                    photo_outside=[{"sha256": f"{n:064x}", "captured_at": None, "position": None}],
                ),
            )
        )
    return out


def outcome(store, toilets):
    return {
        "facilities": {t: json.dumps(store.facility(t)["state"], sort_keys=True) for t in toilets},
        "conflicts": store.rows(
            "SELECT id, field, a, b, winner, resolved_by FROM conflicts ORDER BY id"
        ),
        "submissions": store.rows(
            "SELECT id, record_id, village_code, state, skew_ms FROM submissions"
            " WHERE device_id = 'pusher' ORDER BY id"
        ),
        "photos": store.rows(
            "SELECT submission_id, field, sha256 FROM submission_media"
            " ORDER BY submission_id, field, sha256"
        ),
    }


@pytest.fixture
def fresh(tmp_path, demo_db, clock):
    """Fresh demo databases, each with its app; dropped afterwards on PostgreSQL."""
    made = []

    def make(name):
        url = demo_copy(tmp_path / name, demo_db)
        made.append(url)
        return app_on(tmp_path / name, clock, url)

    yield make
    if session_engine() == "postgresql":
        for url in made:
            drop_database(url)


def phone_of(app):
    return Phone(app.test_client(), "inspector", device_id="pusher")


def test_a_batch_by_set_gives_what_one_item_per_push_gives(fresh, toilets):
    items = reports(toilets[:4], random.Random(5), 40)
    together, apart = fresh("together"), fresh("apart")
    statuses = {r["status"] for r in phone_of(together).push(items).json["results"]}
    assert statuses == {"waiting_for_photos"}
    one_by_one = phone_of(apart)
    for item in items:
        assert one_by_one.push([item]).json["results"][0]["status"] == "waiting_for_photos"
    results = []
    for app in (together, apart):
        store = connect(app.config["DATABASE_URL"])
        results.append(outcome(store, toilets[:4]))
        store.close()
    assert results[0]["conflicts"], "the reports must disagree, or the test proves little"
    for key in results[0]:
        assert results[0][key] == results[1][key], key


def test_a_batch_takes_about_the_same_number_of_statements_whatever_its_size(fresh, toilets):
    app = fresh("count")
    engine = engine_for(app.config["DATABASE_URL"])
    counted = []

    def count(*_args):
        counted.append(1)

    phone = phone_of(app)
    sizes = {}
    rng = random.Random(8)
    event.listen(engine, "before_cursor_execute", count)
    try:
        for size in (5, 50):
            items = reports(toilets, rng, size)
            for n, item in enumerate(items):  # new ids for the second batch
                item["id"] = f"00000000-0000-4000-9{size:03d}-{n:012d}"
            counted.clear()
            assert phone.push(items).status_code == 200
            sizes[size] = len(counted)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # The same statements, but for those writing what only some batches have (new conflicts,
    # resolutions): nothing per item.
    assert sizes[50] - sizes[5] <= 2, sizes


def _refuse_insert_of(store, submission_id: str) -> None:
    """A database trigger that refuses one submission: a failure only the database sees."""
    if store.dialect.name == "sqlite":
        store.q(
            f"CREATE TRIGGER refuse BEFORE INSERT ON submissions WHEN NEW.id = '{submission_id}'"
            " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        )
    else:
        store.q(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN"
            f" IF NEW.id = '{submission_id}' THEN RAISE EXCEPTION 'refused by a trigger';"
            " END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        store.q(
            "CREATE TRIGGER refuse BEFORE INSERT ON submissions FOR EACH ROW"
            " EXECUTE FUNCTION refuse()"
        )


def test_an_item_the_database_refuses_is_answered_failed_and_the_rest_is_stored(
    client, store, phone, toilets
):
    items = reports(toilets, random.Random(2), 6)
    bad = items[3]["id"]
    _refuse_insert_of(store, bad)
    results = phone.push(items).json["results"]
    assert [r["status"] for r in results] == ["waiting_for_photos"] * 3 + ["failed"] + [
        "waiting_for_photos"
    ] * 2
    assert results[3]["errors"]["_item"][0]["code"] == "server_error"
    stored = {
        r["id"]
        for r in store.rows("SELECT id FROM submissions WHERE device_id = :d", d=phone.device_id)
    }
    assert stored == {i["id"] for i in items} - {bad}
    assert store.scalar("SELECT count(*) FROM observations WHERE id = :id", id=bad) == 0
    assert (
        store.scalar("SELECT count(*) FROM submission_media WHERE submission_id = :id", id=bad) == 0
    )
    store.q("DROP TRIGGER refuse" + ("" if store.dialect.name == "sqlite" else " ON submissions"))
    again = phone.push(items).json["results"]
    assert [r["status"] for r in again] == ["duplicate"] * 3 + ["waiting_for_photos"] + [
        "duplicate"
    ] * 2
    assert store.scalar("SELECT count(*) FROM submissions WHERE id = :id", id=bad) == 1
    assert YUNYU in {store.submission(bad)["village_code"]}
