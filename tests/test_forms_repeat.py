"""Repeat groups, choice_filter and required_message in forms/compiler.py (issue 15 contract §1,
§2, §4), and a repeat form's submission through the server's push path.

The JavaScript twin (client_pwa/js/form_logic.js) is compared with this compiler on generated
answer sets of a form with two repeats in tests/test_js.py.
"""

from __future__ import annotations

import copy
import datetime
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forms.compiler import MAX_REPEAT_INSTANCES, DefinitionError, compile_form

DAY = datetime.date(2026, 11, 20)


def t(text: str) -> dict:
    return {"zh": text, "en": text}


def photo(char: str) -> dict:
    return {"sha256": char * 64, "captured_at": "2026-11-20T10:31:05+08:00", "position": None}


# A toilet block inspection: how many rooms, then each room.
FORM = {
    "id": "toilet_block",
    "version": 1,
    "target": "toilet",
    "title": t("公厕分间检查"),
    "fields": [
        # read before it is defined, computed after every room settled
        {"name": "broken_rooms", "type": "calculate", "label": t("坏"),
         "calculation": "count(${rooms}) - count-non-empty(${room_photo})"},
        {"name": "room_total", "type": "integer", "label": t("间数"), "required": True},
        {"name": "rooms", "type": "repeat", "label": {"zh": "厕所间", "en": "Toilet rooms"},
         "repeat_count": "${room_total}",
         "fields": [
             {"name": "room_ok", "type": "yes_no", "label": t("能用"), "required": True,
              "required_message": {"zh": "这一间能不能用？", "en": "Is this room usable?"}},
             {"name": "why", "type": "text", "label": t("原因"), "relevant": "not(${room_ok})",
              "required": True, "constraint": "string-length(.) >= 2"},
             {"name": "room_photo", "type": "photo", "label": t("照片"),
              "relevant": "${room_ok}", "required": True, "max_count": 2},
             {"name": "room_no", "type": "calculate", "label": t("编号"),
              "calculation": "concat(${block}, '-', position(..), '/', count(${rooms}))"},
         ]},
        {"name": "block", "type": "text", "label": t("楼")},
    ],
    "updates": {
        "in_use": "count(${rooms}) > ${broken_rooms}",
        "last_inspected": "${observed_on}",
    },
}  # fmt: skip

GOOD = {
    "room_total": 3,
    "block": "A",
    "rooms": [
        {"room_ok": True, "room_photo": [photo("a")]},
        {"room_ok": True, "room_photo": [photo("b"), photo("c")]},
        {"room_ok": False, "why": "堵了"},
    ],
}


def validate(definition, answers):
    return compile_form(copy.deepcopy(definition)).validate(copy.deepcopy(answers), observed_on=DAY)


def codes(v, key) -> list[str]:
    return [e["code"] for e in v.errors.get(key, [])]


def problems(definition) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        compile_form(definition)
    return info.value.problems


def with_fields(*fields, updates=None) -> dict:
    return {**FORM, "fields": list(fields), "updates": updates or {}}


# ------------------------------------------------------------------------------ validation


def test_a_simple_repeat_form_validates_per_instance():
    v = validate(FORM, GOOD)
    assert v.errors == {} and v.dropped == []
    assert v.answers["rooms"] == [
        {"room_ok": True, "room_photo": [photo("a")], "room_no": "A-1/3"},
        {"room_ok": True, "room_photo": [photo("b"), photo("c")], "room_no": "A-2/3"},
        {"room_ok": False, "why": "堵了", "room_no": "A-3/3"},
    ]
    assert v.answers["broken_rooms"] == 1
    assert [(p["field"], p["sha256"][0]) for p in v.photos] == [
        ("rooms[1].room_photo", "a"),
        ("rooms[2].room_photo", "b"),
        ("rooms[2].room_photo", "c"),
    ]
    assert v.updates == {"in_use": True, "last_inspected": "2026-11-20"}


def test_a_hidden_inner_answer_is_dropped_with_its_instance_key():
    answers = copy.deepcopy(GOOD)
    answers["rooms"][1]["why"] = "x"  # room 2 is usable: why is hidden
    answers["rooms"][0]["why"] = 7  # hidden and of a wrong type: dropped, not judged
    v = validate(FORM, answers)
    assert v.errors == {}
    assert v.dropped == ["rooms[1].why", "rooms[2].why"]
    assert "why" not in v.answers["rooms"][1]
    assert v.answers["rooms"][2]["why"] == "堵了"  # shown in room 3: kept


def test_an_instance_constraint_error_is_keyed_by_instance():
    answers = copy.deepcopy(GOOD)
    answers["rooms"].append({"room_ok": False, "why": "x"})
    answers["room_total"] = 4
    v = validate(FORM, answers)
    assert list(v.errors) == ["rooms[4].why"]
    assert codes(v, "rooms[4].why") == ["constraint"]
    assert v.updates == {}


def test_errors_inside_instances_type_required_count_unknown():
    answers = copy.deepcopy(GOOD)
    answers["rooms"] = [
        {"room_ok": "yes"},
        {"room_ok": True, "room_photo": [photo("a"), photo("b"), photo("c")], "colour": 1},
        {"room_photo": []},
    ]
    v = validate(FORM, answers)
    assert {k: codes(v, k) for k in v.errors} == {
        "rooms[1].room_ok": ["type"],
        "rooms[1].why": ["required"],  # a wrong type reads as no answer: not(${room_ok}) holds
        "rooms[2].room_photo": ["count"],
        "rooms[2].colour": ["unknown_field"],
        "rooms[3].room_ok": ["required"],
        "rooms[3].why": ["required"],
    }
    assert v.errors["rooms[3].room_ok"][0]["message"] == {
        "zh": "这一间能不能用？",
        "en": "Is this room usable?",
    }


@pytest.mark.parametrize(
    ("total", "n", "expected"),
    [(3, 3, []), (2, 3, ["repeat_count"]), (4, 3, ["repeat_count"]), (1, 0, ["repeat_count"])],
)
def test_repeat_count_requires_exactly_that_many(total, n, expected):
    v = validate(FORM, {**GOOD, "room_total": total, "rooms": GOOD["rooms"][:n]})
    assert codes(v, "rooms") == expected
    if expected:
        assert v.errors["rooms"][0]["message"]["zh"] == f"应添加 {total} 项，现在是 {n} 项"


def test_repeat_count_reads_numeric_text_and_ignores_the_rest():
    rep = next(f for f in FORM["fields"] if f["name"] == "rooms")
    for source, total, n, expected in [
        ("concat(' ', ${room_total}, ' ')", 3, 2, ["repeat_count"]),  # " 3 " is 3
        ("concat(${room_total}, '.9')", 2, 2, []),  # 2.9 truncated
        ("concat('x', ${room_total})", 3, 2, []),  # not a number: no count applies
        ("${room_total} * 1000", 1, 2, ["repeat_count"]),  # capped at 100
        ("0 - ${room_total}", 1, 0, []),  # below 0 is 0
    ]:
        fields = [{**f, "repeat_count": source} if f is rep else f for f in FORM["fields"]]
        v = validate({**FORM, "fields": fields}, {**GOOD, "room_total": total,
                                                  "rooms": GOOD["rooms"][:n]})  # fmt: skip
        assert codes(v, "rooms") == expected, source
        if source.endswith("1000"):
            assert v.errors["rooms"][0]["message"]["zh"] == "应添加 100 项，现在是 2 项"


def test_min_max_count_required_and_the_hard_cap():
    room = {"name": "ok", "type": "yes_no", "label": t("好")}
    rep = {"name": "rooms", "type": "repeat", "label": t("间"), "min_count": 2, "max_count": 3,
           "required": True, "fields": [room]}  # fmt: skip
    form = with_fields(rep)
    assert codes(validate(form, {"rooms": [{}] * 2}), "rooms") == []
    assert codes(validate(form, {"rooms": [{}]}), "rooms") == ["count"]
    assert codes(validate(form, {"rooms": [{}] * 4}), "rooms") == ["count"]
    assert codes(validate(form, {"rooms": []}), "rooms") == ["required"]
    assert codes(validate(form, {}), "rooms") == ["required"]
    assert codes(validate(form, {"rooms": {"ok": True}}), "rooms") == ["type"]
    assert codes(validate(form, {"rooms": [{}, "x"]}), "rooms") == ["type"]
    # max_count above the cap is capped at MAX_REPEAT_INSTANCES
    big = with_fields({**rep, "min_count": 0, "max_count": 500})
    assert codes(validate(big, {"rooms": [{}] * MAX_REPEAT_INSTANCES}), "rooms") == []
    v = validate(big, {"rooms": [{"ok": "bad"}] * (MAX_REPEAT_INSTANCES + 1)})
    assert list(v.errors) == ["rooms"] and codes(v, "rooms") == ["count"]  # instances not read
    assert v.errors["rooms"][0]["message"] == {"zh": "最多只能添加 100 项", "en": "At most 100"}
    assert validate(form, {"rooms": [{}]}).errors["rooms"][0]["message"]["zh"] == "至少要添加 2 项"
    assert "min_count above the limit" in problems(with_fields({**rep, "min_count": 101}))[0]


def test_a_hidden_repeat_is_dropped_whole():
    ok = {"name": "ok", "type": "yes_no", "label": t("好")}
    rep = {"name": "rooms", "type": "repeat", "label": t("间"), "relevant": "${has} = 'yes'",
           "required": True, "fields": [ok]}  # fmt: skip
    has = {"name": "has", "type": "text", "label": t("有")}
    total = {"name": "n", "type": "calculate", "label": t("数"), "calculation": "count(${rooms})"}
    form = with_fields(has, rep, total)
    v = validate(form, {"has": "no", "rooms": [{"ok": "not a bool"}]})
    assert v.errors == {} and v.dropped == ["rooms"]
    assert "rooms" not in v.answers and v.answers["n"] == 0
    shown = validate(form, {"has": "yes", "rooms": None})
    assert codes(shown, "rooms") == ["required"]
    assert validate(form, {"has": "yes", "rooms": [{}]}).answers == {"has": "yes", "rooms": [{}],
                                                                      "n": 1}  # fmt: skip


def test_evaluation_contexts_inside_and_outside_instances():
    fields = [
        {"name": "limit", "type": "integer", "label": t("限")},
        {"name": "a", "type": "repeat", "label": t("甲"), "fields": [
            {"name": "x", "type": "integer", "label": t("x"),
             "constraint": ". <= ${limit} and . >= position(..)"},
            {"name": "x2", "type": "calculate", "label": t("x2"), "calculation": "${x} * 2"},
        ]},
        {"name": "b", "type": "repeat", "label": t("乙"), "fields": [
            # another repeat's fields stay node-sets inside this one
            {"name": "y", "type": "integer", "label": t("y"), "constraint": ". <= sum(${x2})"},
            {"name": "pick", "type": "calculate", "label": t("取"),
             "calculation": "indexed-repeat(${x}, ${a}, position(..))"},
        ]},
        {"name": "s", "type": "calculate", "label": t("和"), "calculation": "sum(${x2})"},
        {"name": "first", "type": "calculate", "label": t("首"), "calculation": "${x} + 0"},
        {"name": "top", "type": "calculate", "label": t("最"), "calculation": "max(${y})"},
        {"name": "avg", "type": "calculate", "label": t("均"),
         "calculation": "sum(${x}) div count(${a})"},
    ]  # fmt: skip
    form = with_fields(*fields)
    v = validate(form, {"limit": 5, "a": [{"x": 1}, {"x": 4}], "b": [{"y": 10}, {"y": 11}]})
    assert v.answers["a"] == [{"x": 1, "x2": 2}, {"x": 4, "x2": 8}]
    assert v.answers["b"] == [{"y": 10, "pick": 1}, {"y": 11, "pick": 4}]
    assert (v.answers["s"], v.answers["first"], v.answers["top"]) == (10, 1, 11)
    assert v.answers["avg"] == 2.5  # a fraction stays a number
    assert {k: codes(v, k) for k in v.errors} == {"b[2].y": ["constraint"]}
    bad = validate(form, {"limit": 3, "a": [{"x": 4}, {"x": 1}]})
    assert {k: codes(bad, k) for k in bad.errors} == {
        "a[1].x": ["constraint"],  # above ${limit}
        "a[2].x": ["constraint"],  # below position(..)
    }


def test_choice_filter_offers_by_property_and_refuses_the_rest():
    county = {
        "name": "county",
        "type": "select_one",
        "label": t("县"),
        "choices": [{"value": v, "label": t(v)} for v in ("east", "west")],
    }
    town = {
        "name": "town",
        "type": "select_one",
        "label": t("镇"),
        "choice_filter": "county = ${county}",
        "choices": [
            {"value": v, "label": t(v), "properties": {"county": c}}
            for v, c in (("e1", "east"), ("e2", "east"), ("w1", "west"))
        ],
    }
    many = {
        "name": "towns",
        "type": "select_many",
        "label": t("镇们"),
        "choice_filter": "name != 'w1'",
        "choices": town["choices"],
    }
    form = with_fields(town, county, many)  # the filter reads a field defined after it
    assert validate(form, {"county": "east", "town": "e2"}).errors == {}
    refused = validate(form, {"county": "west", "town": "e2", "towns": ["e1", "w1"]})
    assert {k: codes(refused, k) for k in refused.errors} == {
        "town": ["choice"],
        "towns": ["choice"],
    }
    assert "town" not in refused.answers
    assert codes(validate(form, {"town": "e1"}), "town") == ["choice"]  # no county: none offered
    assert codes(validate(form, {"county": "east", "town": "zz"}), "town") == ["choice"]


def test_choice_filter_inside_a_repeat_uses_position():
    rooms = {"name": "rooms", "type": "repeat", "label": t("间"), "fields": [
        {"name": "kind", "type": "select_one", "label": t("种"),
         "choice_filter": "position(..) = 1 or level = 'any'",
         "choices": [{"value": "main", "label": t("主"), "properties": {"level": "first"}},
                     {"value": "side", "label": t("侧"), "properties": {"level": "any"}}]},
    ]}  # fmt: skip
    v = validate(with_fields(rooms), {"rooms": [{"kind": "main"}, {"kind": "main"}]})
    assert {k: codes(v, k) for k in v.errors} == {"rooms[2].kind": ["choice"]}


def test_a_rule_that_cannot_run_is_an_expression_error_and_now_is_observed_at():
    # now() needs the observation time; without it every rule calling it fails (reported once
    # per field), and a choice_filter that fails offers its choices
    pick = {
        "name": "pick",
        "type": "select_one",
        "label": t("选"),
        "choice_filter": "name = 'a' or now() != ''",
        "choices": [{"value": v, "label": t(v)} for v in ("a", "b")],
    }
    stamp = {
        "name": "stamp",
        "type": "calculate",
        "label": t("时"),
        "calculation": "format-date-time(now(), '%H:%M')",
    }
    form = compile_form(with_fields(pick, stamp))
    v = form.validate({"pick": "b"}, observed_on=DAY)
    assert {k: codes(v, k) for k in v.errors} == {"pick": ["expression"], "stamp": ["expression"]}
    assert v.answers == {"pick": "b"}
    at = form.validate({"pick": "b"}, observed_on=DAY, observed_at="2026-11-20T10:31:05+08:00")
    assert at.errors == {} and at.answers == {"pick": "b", "stamp": "10:31"}


def test_required_message_replaces_the_default():
    field = {
        "name": "who",
        "type": "text",
        "label": t("谁"),
        "required": "${n} > 1",
        "required_message": {"zh": "人多时请写负责人", "en": "Name who is in charge"},
    }
    n = {"name": "n", "type": "integer", "label": t("人")}
    form = with_fields(n, field)
    assert validate(form, {"n": 1}).errors == {}
    v = validate(form, {"n": 2})
    assert v.errors["who"] == [{"code": "required", "message": field["required_message"]}]
    rep = {"name": "rooms", "type": "repeat", "label": t("间"), "required": True,
           "required_message": t("至少一间"), "fields": [n]}  # fmt: skip
    assert validate(with_fields(rep), {}).errors["rooms"][0]["message"] == t("至少一间")


def test_updates_read_repeats_through_node_set_functions_only():
    v = validate(FORM, GOOD)
    assert v.updates["in_use"] is True
    ok = {**FORM, "updates": {"in_use": "sum(${room_ok}) > 0 and count(${rooms}) = 3"}}
    assert validate(ok, GOOD).updates == {"in_use": True}
    for source, name in (
        ("${rooms}", "rooms"),
        ("${room_ok}", "room_ok"),
        ("count(${rooms}) > 0 and ${room_ok}", "room_ok"),
        ("count(concat(${why}))", "why"),
    ):
        found = problems({**FORM, "updates": {"in_use": source}})
        assert found == [
            f"updates 'in_use': reads ${{{name}}} of a repeat; use a function over its instances "
            "(count, count-non-empty, indexed-repeat, join, max, min, sum)"
        ], source


SCALARS = st.none() | st.booleans() | st.integers(-3, 200) | st.floats() | st.text(max_size=6)
INSTANCE = st.dictionaries(
    st.sampled_from(["room_ok", "why", "room_photo", "room_no", "observed_on", "x"]),
    SCALARS | st.lists(st.builds(photo, st.sampled_from("abc")), max_size=3),
    max_size=4,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answers=st.fixed_dictionaries(
        {},
        optional={
            "room_total": SCALARS,
            "block": SCALARS,
            "broken_rooms": SCALARS,
            "rooms": st.lists(INSTANCE | SCALARS, max_size=5) | SCALARS | INSTANCE,
        },
    )
)
def test_validate_never_raises_on_repeat_answers(answers):
    v = compile_form(FORM).validate(answers, observed_on=DAY)
    json.dumps([v.answers, v.errors, v.dropped, v.updates, v.photos])
    for key in [*v.errors, *v.dropped]:
        assert key in FORM_KEYS or key.split("[")[0] == "rooms", key
    if isinstance(v.answers.get("rooms"), list):
        assert len(v.answers["rooms"]) == len(answers.get("rooms") or [])


FORM_KEYS = {"room_total", "block", "broken_rooms", "rooms", "x", "updates.in_use"}


# ------------------------------------------------------------------------------ definitions

INNER = {"name": "ok", "type": "yes_no", "label": t("好")}
REP = {"name": "rooms", "type": "repeat", "label": t("间"), "fields": [INNER]}
TOP = {"name": "top", "type": "integer", "label": t("顶")}


@pytest.mark.parametrize(
    ("fields", "updates", "expected"),
    [
        ([{**REP, "fields": [INNER, {**REP, "name": "inner_rep", "fields": [TOP]}]}], None,
         "field 'inner_rep': a repeat inside a repeat (one level only)"),
        ([TOP, {**REP, "fields": [{**INNER, "name": "top"}]}], None,
         "field 'top': duplicate name (names are unique in the whole form)"),
        ([{**REP, "fields": []}], None, "field 'rooms': a repeat needs a non-empty list of fields"),
        ([{**REP, "constraint": ". > 1"}], None,
         "field 'rooms': key 'constraint' is not allowed for type repeat"),
        ([{**REP, "max_count": 0}], None,
         "field 'rooms': max_count must be at least 1 and min_count"),
        ([{**REP, "min_count": "2"}], None, "field 'rooms': min_count must be an integer"),
        ([TOP, {**REP, "repeat_count": "count(${ok})"}], None,
         "field 'rooms' repeat_count: cannot read its own repeat"),
        ([{**TOP, "relevant": "position(..) > 1"}, REP], None,
         "field 'top' relevant: position(..) only inside a repeat"),
        ([{**REP, "relevant": "position(..) > 1"}], None,
         "field 'rooms' relevant: position(..) only inside a repeat"),
        ([TOP, REP], {"status": "position(..)"},
         "updates 'status': position(..) only inside a repeat"),
        ([{**TOP, "constraint": "size = 1"}], None,
         "field 'top' constraint: bare name 'size': only a choice_filter reads choice properties"
         " (write ${size} for a field)"),
        ([{"name": "s", "type": "select_one", "label": t("s"), "choice_filter": "size = 'x'",
           "choices": [{"value": "a", "label": t("a"), "properties": {"colour": "red"}}]}], None,
         "field 's' choice_filter: 'size' is not a property of the choices"),
        ([{"name": "s", "type": "select_one", "label": t("s"),
           "choices": [{"value": "a", "label": t("a"), "properties": {"name": "x"}}]}], None,
         "field 's': choice 'a' properties must map names (letters, digits, _; not 'name')"
         " to text"),
        ([{"name": "s", "type": "text", "label": t("s"), "choice_filter": "true()"}], None,
         "field 's': key 'choice_filter' is not allowed for type text"),
        ([{**TOP, "required_message": t("要")}], None,
         "field 'top': required_message without required"),
        ([{**TOP, "required": True, "required_message": "要"}], None,
         'field \'top\': required_message must be {"zh": ..., "en": ...}'),
        ([{**TOP, "relevant": "${ok}"}, REP], None, None),  # allowed: reads the node-set
        ([{**TOP, "relevant": "count(${rooms}) > 0"},
          {**REP, "relevant": "${top} > 1"}], None,
         "circular relevance/calculation: top -> rooms -> top"),
        ([{**TOP, "relevant": "${ok}"},
          {**REP, "fields": [{**INNER, "relevant": "${top} > 1"}]}], None,
         "circular relevance/calculation: top -> rooms -> top"),
        ([{**REP, "fields": [{**INNER, "relevant": "${c}"},
                             {"name": "c", "type": "calculate", "label": t("c"),
                              "calculation": "not(${ok})"}]}], None,
         "circular relevance/calculation: ok -> c -> ok"),
        ([{**REP, "fields": ["ok"]}], None, "field 'rooms' fields[0]: must be an object"),
        ([{**REP, "min_count": -1}], None, "field 'rooms': min_count must be 0 or more"),
        ([{**REP, "min_count": 3, "max_count": 2}], None,
         "field 'rooms': max_count must be at least 1 and min_count"),
        ([{**REP, "min_count": 100, "max_count": 100}], None, None),
        ([{**REP, "min_count": 1, "max_count": 1}], None, None),
        ([{**REP, "fields": [{**INNER, "default": "yes"}]}], None,
         "field 'ok': default 'yes' is not a valid yes_no"),
        ([TOP, {**REP, "fields": [{"name": "w", "type": "calculate", "label": t("w"),
                                   "names_where": {"fields": ["top"], "equals": "x"}}]}], None,
         "field 'w': names_where refers to unknown field 'top' (same level)"),
    ],
)  # fmt: skip
def test_definition_problems(fields, updates, expected):
    definition = with_fields(*fields, updates=updates)
    if expected is None:
        compile_form(definition)
        return
    assert expected in problems(definition)


def test_dependency_order_runs_through_repeats():
    form = compile_form(json.loads(json.dumps(FORM)))
    # broken_rooms (defined first) reads the repeat; the repeat reads room_total (repeat_count)
    # and block (a calculate inside reads ${block})
    assert form.order == ["room_total", "block", "rooms", "broken_rooms"]
    assert form.levels["rooms"].order == ["room_ok", "why", "room_photo", "room_no"]
    # inside a repeat too, a field moves after the later field its relevance reads
    later = {"name": "later", "type": "yes_no", "label": t("后")}
    rep = {**REP, "fields": [{**INNER, "relevant": "${later}"}, later]}
    compiled = compile_form(with_fields(rep))
    assert compiled.levels["rooms"].order == ["later", "ok"]
    v = compiled.validate({"rooms": [{"ok": True, "later": False}]}, observed_on=DAY)
    assert v.dropped == ["rooms[1].ok"]


# ------------------------------------------------------------------------------ the server


def test_a_repeat_submission_through_push(phone, store, facilities):
    from conftest import YUNYU, submission

    assert store.publish_form(FORM, "sha-toilet-block", at="2026-11-20T02:00:00.000+00:00")
    toilet = facilities[(YUNYU, "toilet")]["id"]
    item = submission(toilet, phone.clock(), form="toilet_block", answers=GOOD)
    result = phone.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos", result
    assert result["missing"] == sorted(c * 64 for c in "abc")
    rows = store.rows(
        "SELECT field, sha256 FROM submission_media WHERE submission_id = :id ORDER BY seq",
        id=item["id"],
    )
    assert [(r["field"], r["sha256"][0]) for r in rows] == [
        ("rooms[1].room_photo", "a"),
        ("rooms[2].room_photo", "b"),
        ("rooms[2].room_photo", "c"),
    ]
    stored = json.loads(
        store.scalar("SELECT answers FROM submissions WHERE id = :id", id=item["id"])
    )
    assert stored["rooms"][2] == {"room_ok": False, "why": "堵了", "room_no": "A-3/3"}
    bad = copy.deepcopy(GOOD)
    bad["rooms"][2]["why"] = "x"
    result = phone.push([submission(toilet, phone.clock(), form="toilet_block", answers=bad)])
    result = result.json["results"][0]
    assert result["status"] == "invalid"
    assert [e["code"] for e in result["errors"]["rooms[3].why"]] == ["constraint"]
