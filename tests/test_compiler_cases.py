"""Boundary cases of forms/compiler.py that mutation testing showed the other tests left open
(`python tests/tools/mutate.py --module forms/compiler.py`): each case here kills mutants that
survived tests/test_forms.py — limits taken one past or one short, `or` read as `and` on inputs of
the wrong JSON type (which must give a `type` error or a DefinitionError, never a crash),
values dropped on the way to the cleaned answers."""

from __future__ import annotations

import datetime

import pytest

from forms.compiler import DefinitionError, compile_form

DAY = datetime.date(2026, 11, 20)
T = {"zh": "题", "en": "Q"}
MAX_TEXT, MAX_LIST = 5000, 100  # docs/FORMS_FORMAT.md (not imported: the limits are pinned)


def form(*fields, updates=None, **top):
    definition = {
        "id": "cases",
        "version": 1,
        "target": "facility",
        "title": {"zh": "边界", "en": "Edges"},
        "fields": list(fields),
        "updates": updates or {},
        **top,
    }
    return compile_form(definition)


def field(name, ftype, **kw):
    return {"name": name, "type": ftype, "label": T, **kw}


def choices(*values):
    return [{"value": v, "label": T} for v in values]


def photos(n):
    return [{"sha256": f"{i:064x}"} for i in range(n)]


ALL = form(
    field("t", "text"),
    field("i", "integer"),
    field("d", "decimal"),
    field("day", "date"),
    field("at", "datetime"),
    field("g", "geopoint"),
    field("many", "select_many", choices=choices("a", "b")),
    field("p", "photo"),
    field("p2", "photo", max_count=2),
)
WHOLE = 2**53


def codes(v, name):
    return [e["code"] for e in v.errors.get(name, [])]


# (field, answer, accepted?, stored value when accepted: None means "the answer as sent")
ANSWERS = [
    ("t", "x" * MAX_TEXT, True, None),
    ("t", "x" * (MAX_TEXT + 1), False, None),
    ("i", WHOLE - 1, True, None),
    ("i", -(WHOLE - 1), True, None),
    ("i", WHOLE, False, None),
    ("i", -WHOLE, False, None),
    ("i", float(WHOLE - 1), True, WHOLE - 1),
    ("i", float(WHOLE), False, None),
    ("i", 2.0**52, True, 2**52),
    ("d", WHOLE - 1, True, None),
    ("d", WHOLE, False, None),
    ("d", True, False, None),
    ("d", "1.5", False, None),
    ("day", 20261120, False, None),
    ("at", "2026-11-20T10:31+08", True, None),  # 19 characters: the shortest allowed
    ("at", "2026-11-20T1031+08", False, None),  # 18: too short, though Python parses it
    ("at", "2026-11-20T10:31:05.123456+08:00:00.1234", True, None),  # 40: the longest
    ("at", "2026-11-20T10:31:05.123456+08:00:00.12345", False, None),  # 41
    ("at", 5, False, None),
    ("g", {"lat": 90, "lon": 180}, True, None),
    ("g", {"lat": -90, "lon": -180}, True, None),
    ("g", {"lat": 90.5, "lon": 0}, False, None),
    ("g", {"lat": -90.5, "lon": 0}, False, None),
    ("g", {"lat": 0, "lon": 180.5}, False, None),
    ("g", {"lat": 0, "lon": -180.5}, False, None),
    ("g", {"lat": "x", "lon": 0}, False, None),
    ("g", {"lat": 0, "lon": "x"}, False, None),
    ("g", 5, False, None),
    ("g", {"lat": 1, "lon": 2, "accuracy": None}, True, None),
    ("g", {"lat": 1, "lon": 2, "accuracy": 0}, True, None),
    ("g", {"lat": 1, "lon": 2, "accuracy": WHOLE - 1}, True, None),
    ("g", {"lat": 1, "lon": 2, "accuracy": WHOLE}, False, None),
    ("g", {"lat": 1, "lon": 2, "accuracy": -0.5}, False, None),
    ("g", {"lat": 1, "lon": 2, "accuracy": "x"}, False, None),
    ("many", ["a"] * MAX_LIST, True, ["a"]),
    ("many", ["a"] * (MAX_LIST + 1), False, None),
    ("many", 5, False, None),
    ("many", "a", False, None),
    ("p", photos(MAX_LIST), True, None),
    ("p", photos(MAX_LIST + 1), False, None),
    ("p", 5, False, None),
    ("p", [5], False, None),
    ("p", [{}], False, None),
    ("p2", photos(2), True, None),
    ("p2", photos(3), False, None),
]


@pytest.mark.parametrize(("name", "answer", "ok", "stored"), ANSWERS)
def test_answer_limits_and_wrong_types(name, answer, ok, stored):
    v = ALL.validate({name: answer}, observed_on=DAY)
    if not ok:
        assert codes(v, name) in (["type"], ["count"]), v.errors
        assert name not in v.answers or codes(v, name) == ["count"]
        return
    assert v.ok, v.errors
    want = answer if stored is None else stored
    if name in ("p", "p2"):
        want = [{"sha256": p["sha256"], "captured_at": None, "position": None} for p in answer]
    assert v.answers[name] == want and type(v.answers[name]) is type(want)


def test_text_too_long_message_and_geopoint_keys():
    v = ALL.validate({"t": "x" * (MAX_TEXT + 1)}, observed_on=DAY)
    assert str(MAX_TEXT) in v.errors["t"][0]["message"]["zh"]
    v = ALL.validate({"g": {"lat": 1, "lon": 2}}, observed_on=DAY)
    assert v.answers["g"] == {"lat": 1, "lon": 2}  # no accuracy key made up
    v = ALL.validate({"g": {"lat": 1, "lon": 2, "accuracy": 3}}, observed_on=DAY)
    assert v.answers["g"] == {"lat": 1, "lon": 2, "accuracy": 3}


def test_empty_answers_are_not_stored_and_required_messages_by_type():
    v = ALL.validate({"t": "   ", "i": None, "day": None}, observed_on=DAY)
    assert v.ok and v.answers == {"many": [], "p": [], "p2": []}
    f = form(
        field("many", "select_many", choices=choices("a"), required=True),
        field("one", "select_one", choices=choices("a"), required=True),
        field("t", "text", required=True),
        field("p", "photo", required=True),
    )
    v = f.validate({}, observed_on=DAY)
    messages = {k: e[0]["message"]["zh"] for k, e in v.errors.items()}
    assert messages == {
        "many": "至少勾选一项",
        "one": "必须选择",
        "t": "必须填写",
        "p": "请拍照，至少 1 张",
    }


def test_calculations_store_numbers_and_names_where_reads_in_order():
    f = form(
        field(
            "failed",
            "calculate",
            names_where={"fields": ["s1", "s2", "m1", "m2"], "equals": "fail"},
        ),  # fmt: skip
        field("two", "calculate", calculation="1 + 1"),
        field("half", "calculate", calculation="3 div 2"),
        field("big", "calculate", calculation="pow(10, 20)"),  # a whole float: stored as int
        field("s1", "select_one", choices=choices("fail", "not_fail")),
        field("s2", "select_one", choices=choices("fail", "not_fail")),
        field("m1", "select_many", choices=choices("fail", "not_fail")),
        field("m2", "select_many", choices=choices("fail", "not_fail")),
    )
    v = f.validate(
        {"s1": "not_fail", "m1": ["not_fail", "fail"], "m2": ["not_fail"]}, observed_on=DAY
    )
    assert v.ok, v.errors
    assert v.answers["failed"] == ["m1"]  # s2 unanswered: skipped, not a crash
    assert v.answers["two"] == 2 and type(v.answers["two"]) is int
    assert v.answers["half"] == 1.5
    assert v.answers["big"] == 10**20 and type(v.answers["big"]) is int
    v = f.validate({"s1": "fail", "s2": "fail"}, observed_on=DAY)
    assert v.answers["failed"] == ["s1", "s2"]
    assert repr(f) == "<CompiledForm cases v1 target=facility>"


def test_a_rule_that_fails_at_run_time_is_an_expression_error():
    """A rule that raises when evaluated (a definition bug) is reported, never a crash."""
    from forms import expr

    f = form(field("shown", "text", relevant="true()"), field("other", "text"))
    real = expr.evaluate

    def failing(source, *args, **kwargs):
        if source == "true()":
            raise RuntimeError("boom")
        return real(source, *args, **kwargs)

    expr.evaluate = failing
    try:
        v = f.validate({"shown": "x", "other": "y"}, observed_on=DAY)
    finally:
        expr.evaluate = real
    assert codes(v, "shown") == ["expression"] and v.answers == {"shown": "x", "other": "y"}


def test_photo_counts_at_the_limits():
    f = form(field("p", "photo", min_count=2, max_count=2))
    assert f.validate({"p": photos(2)}, observed_on=DAY).ok
    assert codes(f.validate({"p": photos(1)}, observed_on=DAY), "p") == ["count"]
    assert codes(f.validate({"p": photos(3)}, observed_on=DAY), "p") == ["count"]
    form(field("p", "photo", max_count=1))  # 1 is allowed
    form(field("p", "photo", min_count=0))


def _bad(change):
    definition = {
        "id": "cases",
        "version": 1,
        "target": "facility",
        "title": {"zh": "边界", "en": "Edges"},
        "fields": [field("s", "select_one", choices=choices("a"))],
        "updates": {},
    }
    change(definition)
    return definition


def _set(key, value, i=0):
    return lambda d: d["fields"][i].update({key: value})


def _top(key, value):
    return lambda d: d.update({key: value})


def _calc(names_where):
    return lambda d: d["fields"].append(field("c", "calculate", names_where=names_where))


BAD = [
    _set("label", {"zh": " ", "en": "Q"}),
    _set("label", {"zh": "题", "en": 5}),
    _set("relevant", 5),
    _set("relevant", "   "),
    _top("id", 5),
    _top("description", "x"),
    _top("description", {"zh": "说明"}),
    _set("choices", 5),
    _set("choices", [5]),
    _set("choices", [{"value": 5, "label": T}]),
    lambda d: d["fields"].append(field("p", "photo", min_count="2")),
    lambda d: d["fields"].append(field("p", "photo", min_count=True)),
    lambda d: d["fields"].append(field("p", "photo", max_count="2")),
    lambda d: d["fields"].append(field("p", "photo", min_count=-1)),
    lambda d: d["fields"].append(field("p", "photo", max_count=0)),
    lambda d: d["fields"].append(field("p", "photo", min_count=3, max_count=2)),
    _calc(5),
    _calc({"fields": ["s"]}),
    _calc({"fields": ["s"], "equals": 5}),
    _calc({"fields": ["s"], "equals": ""}),
    _calc({"fields": 5, "equals": "a"}),
    _calc({"fields": [], "equals": "a"}),
    _calc({"fields": [5], "equals": "a"}),
    # a cycle through names_where: s is shown by c, which lists s
    lambda d: _calc({"fields": ["s"], "equals": "a"})(d) or _set("relevant", "${c} = ''")(d),
]


@pytest.mark.parametrize("change", BAD)
def test_bad_definitions_are_definition_errors_not_crashes(change):
    with pytest.raises(DefinitionError):
        compile_form(_bad(change))


def test_good_edges_compile():
    description = {"zh": "说明", "en": "About"}
    compile_form(_bad(_top("description", description)))
    compile_form(_bad(lambda d: d["fields"].append(field("p", "photo", min_count=2, max_count=2))))
