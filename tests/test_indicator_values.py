"""Indicators count the same facts however the engine spells a JSON member it reads.

SQLite's json_extract gives JSON true/false as 1/0 and numbers as numbers; PostgreSQL's ->>
gives their text ('true', 'false', '85'). `village_facts` must not care which.
"""

import pytest

from server import indicators

VILLAGES = [{"code": "v1", "households": 40}]


def rows(true, false, number):
    """One village's facilities, with booleans and numbers spelled by the engine."""
    return [
        {"village_code": "v1", "kind": "toilet", "type": "household", "status": "active",
         "sanitary": true, "harmless": true, "in_use": true},
        {"village_code": "v1", "kind": "toilet", "type": "household", "status": "active",
         "sanitary": true, "harmless": false, "in_use": None},
        {"village_code": "v1", "kind": "toilet", "type": "household", "status": "active",
         "sanitary": true, "harmless": true, "in_use": false},
        {"village_code": "v1", "kind": "toilet", "type": "committee", "status": "active",
         "open_to_public": true, "in_use": true},
        {"village_code": "v1", "kind": "rubbish", "type": "transfer_station", "status": "active",
         "running": true},
        {"village_code": "v1", "kind": "rubbish", "type": "bin_group", "status": "active",
         "running": false},
        {"village_code": "v1", "kind": "zone", "type": "hamlet", "status": "active",
         "score": number(80)},
        {"village_code": "v1", "kind": "zone", "type": "hamlet", "status": "active",
         "score": number(92.5)},
        {"village_code": "v1", "kind": "zone", "type": "hamlet", "status": "active",
         "score": None},
    ]  # fmt: skip


SQLITE = rows(1, 0, lambda n: n)
POSTGRESQL = rows("true", "false", str)


@pytest.mark.parametrize("engine_rows", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_facts_do_not_depend_on_the_engines_spelling(engine_rows):
    facts = indicators.village_facts(VILLAGES, engine_rows)["v1"]
    assert facts == indicators.village_facts(VILLAGES, rows(True, False, lambda n: n))["v1"]
    assert (facts["household_toilets"], facts["sanitary"], facts["harmless"]) == (3, 2, 1)
    assert (facts["committee_ok"], facts["rubbish_points"], facts["rubbish_running"]) == (1, 2, 1)
    assert (facts["zones_scored"], facts["score_sum"]) == (2, 172.5)
    assert type(indicators.village_facts(VILLAGES, rows(1, 0, str)[6:7])["v1"]["score_sum"]) is int


def test_a_score_that_is_no_number_is_not_counted():
    row = {"village_code": "v1", "kind": "zone", "type": "hamlet", "score": "良"}
    assert indicators.village_facts(VILLAGES, [row])["v1"]["zones_scored"] == 0
