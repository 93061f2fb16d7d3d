"""Repeat groups, choice_filter and required_message in forms/compiler.py, case by case from issue
15's contract (docs/FORMS_FORMAT.md): what the definition checker refuses, and how answers with
instances validate. Written to kill the mutants of the repeat code that tests/test_forms.py left
alive (`python tests/tools/mutate.py --module forms/compiler.py`)."""

from __future__ import annotations

import copy
import datetime

import pytest

from forms.compiler import DefinitionError, compile_form

DAY = datetime.date(2026, 11, 20)
T = {"zh": "题", "en": "Q"}
MSG = {"zh": "请说明", "en": "Say why"}


def field(name, ftype, **kw):
    return {"name": name, "type": ftype, "label": T, **kw}


def choices(*values, **props):
    """choices("a", "b", county=["x", "y"]): property county of a is x, of b is y."""
    out = []
    for i, v in enumerate(values):
        c = {"value": v, "label": T}
        p = {k: vs[i] for k, vs in props.items() if vs[i] is not None}
        if p:
            c["properties"] = p
        out.append(c)
    return out


def definition(*fields, updates=None):
    return {
        "id": "rep",
        "version": 1,
        "target": "facility",
        "title": {"zh": "重复", "en": "Repeat"},
        "fields": list(fields),
        "updates": updates or {},
    }


def rooms(*inner, **kw):
    return field("rooms", "repeat", fields=list(inner), **kw)


def photo(c):
    return {"sha256": c * 64}


BASE = definition(
    field("n", "integer"),
    field("county", "select_one", choices=choices("x", "y")),
    # defined before the repeat, reads it: evaluated after every instance settled
    field("seen", "calculate", calculation="count(${rooms})"),
    field("total", "calculate", calculation="sum(${size})"),
    rooms(
        # reads a later inner field: ordered after it within the instance
        field("why", "text", relevant="${ok} = 'no'", required=True, required_message=MSG),
        field("ok", "yes_no"),
        field("size", "integer"),
        field("pos", "calculate", calculation="position(..) * 10"),
        field("top_n", "calculate", calculation="${n}"),
        field("tip", "note"),
        field("pic", "photo"),
        field(
            "town",
            "select_one",
            choices=choices("t1", "t2", "t3", county=["x", "y", None]),
            choice_filter="county = ${county} or name = 't3'",
        ),
        field(
            "towns",
            "select_many",
            choices=choices("t1", "t2", county=["x", "y"]),
            choice_filter="county = ${county}",
        ),
        relevant="${n} != 0",
    ),
    updates={"status": "if(count(${rooms}) > 0, 'active', 'none')"},
)
FORM = compile_form(copy.deepcopy(BASE))


def check(answers, form=FORM):
    return form.validate(answers, observed_on=DAY)


def codes(v):
    return {k: [e["code"] for e in errs] for k, errs in v.errors.items()}


def test_instances_validate_one_by_one():
    v = check(
        {
            "n": 2,
            "county": "x",
            "rooms": [
                {"ok": True, "size": 3, "pic": [photo("a")], "town": "t1", "towns": ["t1"]},
                {"ok": False, "why": "坏了", "size": 4, "pic": [photo("b"), photo("c")]},
            ],
        }
    )
    assert v.ok, v.errors
    assert v.answers["rooms"] == [
        {"ok": True, "size": 3, "pos": 10, "top_n": 2, "town": "t1", "towns": ["t1"],
         "pic": [{"sha256": "a" * 64, "captured_at": None, "position": None}]},
        {"ok": False, "why": "坏了", "size": 4, "pos": 20, "top_n": 2, "towns": [],
         "pic": [{"sha256": c * 64, "captured_at": None, "position": None} for c in "bc"]},
    ]  # fmt: skip
    assert (v.answers["seen"], v.answers["total"]) == (2, 7)
    assert [p["field"] for p in v.photos] == ["rooms[1].pic", "rooms[2].pic", "rooms[2].pic"]
    assert v.updates == {"status": "active"}


def test_errors_are_keyed_by_instance():
    v = check(
        {
            "n": 1,
            "county": "x",
            "rooms": [
                {"ok": True, "why": "多余", "zz": 1},
                {"ok": False, "size": "big", "town": "t2", "towns": ["t1", "t2"]},
                {"ok": False, "why": "x", "town": "t3"},
            ],
        }
    )
    assert codes(v) == {
        "rooms[1].zz": ["unknown_field"],
        "rooms[2].why": ["required"],
        "rooms[2].size": ["type"],
        "rooms[2].town": ["choice"],  # t2 is county y
        "rooms[2].towns": ["choice"],
    }
    assert v.errors["rooms[2].why"][0]["message"] == MSG
    assert v.dropped == ["rooms[1].why"]
    assert v.updates == {}


def test_hidden_repeat_is_dropped_and_reads_as_no_instances():
    v = check({"n": 0, "rooms": [{"ok": True, "pic": [photo("a")]}]})
    assert v.ok and v.dropped == ["rooms"] and "rooms" not in v.answers and v.photos == []
    assert v.answers["seen"] == 0 and v.updates == {"status": "none"}
    v = check({"n": 0, "rooms": []})
    assert v.ok and v.dropped == []


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (None, None),
        ([], None),
        ("x", "type"),
        ({"ok": True}, "type"),
        ([{"ok": True}, 5], "type"),
        ([{}] * 100, None),
        ([{}] * 101, "count"),
    ],
)
def test_repeat_answer_shapes(answer, code):
    v = check({"n": 1, "rooms": answer})
    assert codes(v) == ({"rooms": [code]} if code else {}), v.errors
    if code is None:
        assert len(v.answers["rooms"]) == len(answer or [])
    else:
        assert "rooms" not in v.answers


def counted(**kw):
    return compile_form(definition(field("n", "decimal"), rooms(field("a", "text"), **kw)))


@pytest.mark.parametrize(
    ("kw", "n", "got", "code", "zh"),
    [
        ({"required": True}, None, 0, "required", "请至少添加一项"),
        ({"required": True, "required_message": MSG}, None, 0, "required", MSG["zh"]),
        ({"required": "${n} > 1"}, 2, 0, "required", "请至少添加一项"),
        ({"required": "${n} > 1"}, 1, 0, None, None),
        ({"required": True}, None, 1, None, None),
        ({"min_count": 2}, None, 0, None, None),  # no instance and not required: nothing
        ({"min_count": 2}, None, 1, "count", "至少要添加 2 项"),
        ({"min_count": 2}, None, 2, None, None),
        ({"max_count": 3}, None, 3, None, None),
        ({"max_count": 3}, None, 4, "count", "最多只能添加 3 项"),
        ({"max_count": 500}, None, 100, None, None),
        ({"repeat_count": "${n}"}, 2, 2, None, None),
        ({"repeat_count": "${n}"}, 2, 1, "repeat_count", "应添加 2 项，现在是 1 项"),
        ({"repeat_count": "${n}"}, 2, 3, "repeat_count", "应添加 2 项，现在是 3 项"),
        ({"repeat_count": "${n}"}, 2.7, 2, None, None),
        ({"repeat_count": "${n}"}, -3, 0, None, None),
        ({"repeat_count": "${n}"}, -3, 1, "repeat_count", "应添加 0 项，现在是 1 项"),
        ({"repeat_count": "${n}"}, 200, 100, None, None),
        ({"repeat_count": "${n}", "min_count": 5}, 2, 2, None, None),  # repeat_count wins
        ({"repeat_count": "${n}", "max_count": 1}, None, 3, "count", "最多只能添加 1 项"),
        ({"repeat_count": "${n} > 1", "max_count": 1}, 5, 3, "count", "最多只能添加 1 项"),
        ({"repeat_count": "${n} div 0", "max_count": 1}, 5, 3, "count", "最多只能添加 1 项"),
    ],
)
def test_instance_counts(kw, n, got, code, zh):
    answers = {"rooms": [{"a": str(i)} for i in range(got)]}
    if n is not None:
        answers["n"] = n
    v = counted(**kw).validate(answers, observed_on=DAY)
    assert codes(v) == ({"rooms": [code]} if code else {}), v.errors
    if code:
        assert v.errors["rooms"][0]["message"]["zh"] == zh


def test_ordering_and_position_reach_the_checks():
    form = compile_form(
        definition(
            rooms(
                field("a", "text", required="position(..) = 2"),
                field("b", "integer", constraint=". = position(..)"),
                repeat_count="${m}",  # reads a field defined after the repeat
            ),
            field("m", "integer"),
        )
    )
    v = form.validate({"m": 2, "rooms": [{"b": 1}, {"b": 3}]}, observed_on=DAY)
    assert codes(v) == {"rooms[2].a": ["required"], "rooms[2].b": ["constraint"]}
    v = form.validate({"m": 2, "rooms": [{"b": 1}]}, observed_on=DAY)
    assert codes(v) == {"rooms": ["repeat_count"]}
    v = check({"n": 1, "rooms": [{}] * 101})
    assert v.errors["rooms"][0]["message"] == {"zh": "最多只能添加 100 项", "en": "At most 100"}


def test_problems_name_where_they_are():
    d = _with(_inner(1, name="Bad.name"))
    d["fields"].append({"name": "Top-level", "type": "text", "label": T})
    problems = _problems(d)
    assert any(p.startswith("field 'rooms' fields[1]: name 'Bad.name'") for p in problems), problems
    assert any(p.startswith("fields[5]: name 'Top-level'") for p in problems), problems
    # an updates expression with an unknown field is reported once, not also as a repeat read
    problems = _problems(_with(lambda d: d["updates"].update(status="${size} + ${ghost}")))
    assert problems == ["updates 'status': reference to unknown field ${ghost}"], problems


def test_a_repeat_count_that_fails_is_an_expression_error():
    from forms import expr

    form = counted(repeat_count="${n} + 1")
    real = expr.evaluate

    def failing(source, *args, **kwargs):
        if source == "${n} + 1":
            raise RuntimeError("boom")
        return real(source, *args, **kwargs)

    expr.evaluate = failing
    try:
        v = form.validate({"n": 1, "rooms": [{"a": "x"}]}, observed_on=DAY)
    finally:
        expr.evaluate = real
    assert codes(v) == {"rooms": ["expression"]}


def test_a_choice_filter_that_fails_offers_the_choices_and_says_so():
    from forms import expr

    form = compile_form(
        definition(
            field(
                "s", "select_one", choices=choices("a", "b", k=["1", "2"]), choice_filter="k = '1'"
            )
        )
    )
    assert codes(form.validate({"s": "b"}, observed_on=DAY)) == {"s": ["choice"]}
    real = expr.evaluate

    def failing(source, *args, **kwargs):
        if source == "k = '1'":
            raise RuntimeError("boom")
        return real(source, *args, **kwargs)

    expr.evaluate = failing
    try:
        v = form.validate({"s": "b"}, observed_on=DAY)
    finally:
        expr.evaluate = real
    assert codes(v) == {"s": ["expression"]} and v.answers == {"s": "b"}


def _problems(d):
    with pytest.raises(DefinitionError) as info:
        compile_form(d)
    return info.value.problems


def _with(change):
    d = copy.deepcopy(BASE)
    change(d)
    return d


def _inner(i, **kw):
    return lambda d: d["fields"][4]["fields"][i].update(kw)


def _rep(**kw):
    return lambda d: d["fields"][4].update(kw)


BAD = [
    (_rep(fields=[]), "non-empty list of fields"),
    (_rep(fields="ok"), "non-empty list of fields"),
    (lambda d: d["fields"][4].pop("fields"), "non-empty list of fields"),
    (lambda d: d["fields"][4]["fields"].append(rooms(field("b", "text")) | {"name": "inner"}),
     "repeat inside a repeat"),
    (lambda d: d["fields"][4]["fields"].append(field("n", "text")), "duplicate name"),
    (_inner(1, label={"zh": "只有中文"}), "label"),
    (_inner(1, colour="red"), "not allowed"),
    (_inner(8, choice_filter="colour = 'x'"), "not a property"),
    (_inner(1, relevant="county = 'x'"), "only a choice_filter"),
    (lambda d: d["fields"][0].update(relevant="position(..) = 1"), "position(..) only inside"),
    (_rep(repeat_count="position(..)"), "position(..) only inside"),
    (lambda d: d["updates"].update(status="${rooms}"), "reads ${rooms} of a repeat"),
    (lambda d: d["updates"].update(status="${size} + count(${rooms})"), "reads ${size}"),
    (_inner(1, required_message={"zh": "只有中文"}), "required_message must be"),
    (_inner(1, required_message=MSG), "required_message without required"),
    (_rep(min_count=101), "min_count above the limit"),
    (_rep(min_count=-1), "min_count must be 0 or more"),
    (_rep(min_count="2"), "min_count must be an integer"),
    (_rep(max_count=0), "max_count must be at least 1"),
    (_rep(min_count=3, max_count=2), "max_count must be at least 1"),
    (_rep(repeat_count="${size}"), "cannot read its own repeat"),
    (_rep(repeat_count="${rooms}"), "cannot read its own repeat"),
    (_rep(relevant="${ok}"), "cannot depend on itself"),
    (_rep(relevant="count(${rooms}) = 0"), "cannot depend on itself"),
    (_inner(7, choices=[{"value": "t1", "label": T, "colour": "x"}]), "choices[0] must be"),
    (_inner(7, choices=[{"value": "t1", "label": T, "properties": "x"}]), "properties must"),
    (_inner(7, choices=[{"value": "t1", "label": T, "properties": {"name": "x"}}]), "properties"),
    (_inner(7, choices=[{"value": "t1", "label": T, "properties": {"k": 1}}]), "properties"),
    (_inner(7, choices=[{"value": "t1", "label": T, "properties": {"a-b": "1"}}]), "properties"),
    (_inner(7, choice_filter="${town} = 't1'"), "refers to itself"),
    (lambda d: d["fields"][4]["fields"].extend([
        field("c1", "calculate", calculation="${c2}"),
        field("c2", "calculate", calculation="${c1}")]), "circular"),
    (lambda d: d["fields"].append(
        field("late", "calculate", calculation="${total}", relevant="${late2} = 1")) or
        d["fields"].append(field("late2", "calculate", calculation="${late}")), "circular"),
    (_inner(1, relevant="${seen} > 0"), "circular"),  # rooms -> seen -> rooms
    (lambda d: d["fields"][1].update(relevant="${seen} > 0") or
        d["fields"][4].update(relevant="${county} = 'x'"), "circular"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "needle"), BAD)
def test_definition_checker_catches(change, needle):
    problems = _problems(_with(change))
    assert any(needle in p for p in problems), problems


GOOD = [
    lambda d: d["updates"].update(status="join(' ', ${size})"),
    lambda d: d["updates"].update(status="if(sum(${size}) > max(${size}), 'a', 'b')"),
    lambda d: d["updates"].update(status="indexed-repeat(${ok}, ${rooms}, 1)"),
    _rep(repeat_count="${n}", min_count=100, max_count=100),
    _rep(required=True, required_message=MSG),
    _inner(1, relevant="position(..) = 1 and ${n} > 0"),
    _inner(8, choice_filter="county = ${county} and name != ${town}"),
]


@pytest.mark.parametrize("change", GOOD)
def test_definition_checker_accepts(change):
    compile_form(_with(change))
