"""Fix and resend (issue 12): a pushed submission may name the submission it replaces.

The server takes `replaces` only for an earlier submission about the same record in the
caller's villages, stores it, and the desk shows the chain both ways (替代了 / 被替代).
"""

import uuid

from conftest import YUNYU, demo_data, submission
from test_scope_matrix import desk_login


def _toilets(village=YUNYU):
    return [
        f["id"]
        for f in demo_data()["facilities"]
        if f["village"] == village and f["kind"] == "toilet"
    ]


def test_replaces_is_stored_checked_and_shown_on_the_desk(client, phone, store):
    first, second = _toilets()[:2]
    old = submission(first, phone.clock())
    assert phone.push([old]).json["results"][0]["status"] in ("accepted", "waiting_for_photos")

    new = {**submission(first, phone.clock()), "replaces": old["id"]}
    other_record = {**submission(second, phone.clock()), "replaces": old["id"]}
    unknown = {**submission(first, phone.clock()), "replaces": str(uuid.uuid4())}
    not_uuid = {**submission(first, phone.clock()), "replaces": "x' OR 1=1"}
    results = phone.push([new, other_record, unknown, not_uuid]).json["results"]
    assert results[0]["status"] in ("accepted", "waiting_for_photos"), results[0]
    for bad in results[1:]:
        assert bad["status"] == "invalid", bad
        assert bad["errors"]["replaces"][0]["code"] == "bad_replaces"
    assert store.submission(new["id"])["replaces"] == old["id"]
    assert store.submission(old["id"])["replaces"] is None
    assert store.submission(other_record["id"]) is None
    # The same id with another `replaces` is different content: refused, never overwritten.
    again = {**new, "replaces": None}
    assert phone.push([again]).json["results"][0]["status"] == "refused"

    desk, _ = desk_login(client, "supervisor")
    page = desk.get(f"/desk/submissions/{new['id']}").get_data(as_text=True)
    assert "替代了" in page and f"/desk/submissions/{old['id']}" in page
    page = desk.get(f"/desk/submissions/{old['id']}").get_data(as_text=True)
    assert "被替代" in page and f"/desk/submissions/{new['id']}" in page
