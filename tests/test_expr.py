"""Form expression language: the shared vectors, properties, and the Python-only API rules."""

import dataclasses
import datetime
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forms import expr
from forms.expr import ExprError, evaluate, parse, references, truthy

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "forms" / "expr_vectors.json").read_text(encoding="utf-8"))
TODAY = datetime.date.fromisoformat(VECTORS["today"])
CASES = VECTORS["cases"]


def answers_of(case, nodeset=expr.Nodeset):
    """The case's answers, with {"$nodeset": [...]} values made node-sets."""
    return {
        key: nodeset(value["$nodeset"])
        if isinstance(value, dict) and "$nodeset" in value
        else value
        for key, value in case["answers"].items()
    }


def options_of(case):
    return {
        "current": case.get("current"),
        "today": TODAY,
        "now": VECTORS["now"],
        "position": case.get("position"),
        "choice": case.get("choice"),
        "labels": case.get("labels"),
    }


def same(got, want):
    """JSON equality, with numbers equal within 1e-9 (relative above 1) and bool never a number."""
    if isinstance(want, bool) or isinstance(got, bool) or want is None or got is None:
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(got - want) <= 1e-9 * max(1.0, abs(got), abs(want))
    return type(got) is type(want) and got == want


# ---------------------------------------------------------------- the shared vectors


def test_vectors_file_shape():
    assert VECTORS["version"] == 1
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "vector names must be unique"
    assert len(CASES) >= 100
    for case in CASES:
        assert set(case) <= {
            "name", "expr", "answers", "current", "result", "error", "references",
            "bare_names", "uses_position", "position", "choice", "labels",
        }  # fmt: skip
        assert ("result" in case) != ("error" in case), case["name"]
        assert case.get("error", "parse") in ("parse", "eval")


def test_vectors_call_every_function():
    call = re.compile(r"((?:jr:)?[a-z][a-z0-9-]*)\(")
    called = {name for case in CASES for name in call.findall(case["expr"])}
    assert set(expr.FUNCTIONS) <= called


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_vector(case):
    kwargs = options_of(case)
    if case.get("error") == "parse":
        with pytest.raises(ExprError):
            parse(case["expr"])
    if "error" in case:
        with pytest.raises(ExprError):
            evaluate(case["expr"], answers_of(case), **kwargs)
        return
    got = evaluate(case["expr"], answers_of(case), **kwargs)
    assert same(got, case["result"]), f"{case['expr']!r} gave {got!r}"
    json.dumps(got, allow_nan=False)
    if "references" in case:
        assert references(case["expr"]) == frozenset(case["references"])
    if "bare_names" in case:
        assert expr.bare_names(case["expr"]) == frozenset(case["bare_names"])
    if "uses_position" in case:
        assert expr.uses_position(case["expr"]) is case["uses_position"]


# ---------------------------------------------------------------- API rules


def test_parse_is_cached_and_nodes_are_frozen():
    node = parse("${a} + 1")
    assert parse("${a} + 1") is node
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.op = "-"


def test_evaluate_accepts_a_parsed_expression():
    assert evaluate(parse("${a} * 2"), {"a": 4}, today=TODAY) == 8


def test_expr_error_is_a_value_error_and_says_where():
    with pytest.raises(ValueError, match="unexpected '\\*' at column 4") as info:
        parse("1 +* 2")
    assert info.value.position == 3


@pytest.mark.parametrize(
    "source, message",
    [
        ("total(1)", "unknown function total()"),
        ("if(1, 2)", "if() takes 3 arguments, got 2"),
        ("'abc", "unclosed string"),
        ("${a b}", "bad field reference"),
        ("..", "'..' only in position(..)"),
        ("position(.)", "expected '..'"),
        ("digest('a', '')", "digest() has no algorithm ''"),
        ("digest('a', 'MD5', 'base32')", "digest() has no encoding 'base32'"),
        ("pulldata('a', 'b', 'c', 'd')", "forms here have no attachments"),
    ],
)
def test_error_messages_name_the_problem(source, message):
    with pytest.raises(ExprError, match=re.escape(message)):
        parse(source)


def test_bare_name_outside_a_choice_filter_says_what_to_write():
    with pytest.raises(ExprError, match=re.escape("write ${yes} for a field, 'yes' for text")):
        evaluate("yes", {}, today=TODAY)
    with pytest.raises(ExprError, match=re.escape("position(..) is only defined inside a repeat")):
        evaluate("position(..)", {}, today=TODAY)


def test_and_or_if_coalesce_short_circuit():
    # today() with no date would raise, so reaching it would show up
    for source in [
        "false() and today() = ''",
        "true() or today() = ''",
        "if(true(), 1, today())",
        "coalesce(1, today())",
    ]:
        assert evaluate(source, {}, today=None) in (True, False, 1)
    with pytest.raises(ExprError, match="today"):
        evaluate("true() and today() = ''", {}, today=None)


def test_today_accepts_a_datetime_and_uses_its_date():
    now = datetime.datetime(2026, 11, 23, 23, 59)
    assert evaluate("today()", {}, today=now) == "2026-11-23"


def test_python_dates_in_answers_read_as_iso_strings():
    assert evaluate("${d} < today()", {"d": datetime.date(2026, 1, 1)}, today=TODAY) is True


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, False),
        ("", False),
        ("no", True),
        (0, False),
        (0.0, False),
        (2, True),
        (True, True),
        (False, False),
        ([], False),
        (["a"], True),
        ({}, False),
        ({"lat": 1}, True),
        (float("nan"), False),
    ],
)
def test_truthy_is_xpath_boolean(value, expected):
    assert truthy(value) is expected


def test_integral_results_are_ints_and_others_floats():
    assert type(evaluate("6 div 2", {}, today=TODAY)) is int
    assert type(evaluate("7 div 2", {}, today=TODAY)) is float
    assert evaluate("-0", {}, today=TODAY) == 0


def test_huge_and_non_finite_answers_read_as_empty():
    answers = {"big": 10**400, "nan": float("nan"), "inf": float("-inf")}
    for name in answers:
        assert evaluate(f"${{{name}}} = ''", answers, today=TODAY) is True


def test_docs_describe_every_function():
    docs = (ROOT / "docs" / "EXPRESSIONS.md").read_text(encoding="utf-8")
    for name in expr.FUNCTIONS:
        assert f"`{name}(" in docs, name


# ---------------------------------------------------------------- properties

EXPR_CHARS = "${}()'\" .,=!<>+-*0123456789abcdefilmnorstuvx_[]\\^?|"


@settings(max_examples=300)
@given(st.one_of(st.text(), st.text(alphabet=EXPR_CHARS, max_size=40)))
def test_parse_raises_only_expr_error(source):
    try:
        parse(source)
    except ExprError:
        pass


REGEX_CHARS = "ab0-9[]^$.|?*+(){},:=!\\dwsDWSbpu4e -"


@settings(max_examples=300)
@given(st.text(alphabet=REGEX_CHARS, max_size=16))
def test_regex_patterns_are_rejected_or_compile_cleanly(pattern):
    # pytest turns warnings (e.g. re's FutureWarning on "[[") into errors
    source = f"regex(., '{pattern}')"
    try:
        node = parse(source)
    except ExprError:
        return
    assert evaluate(node, {}, current="ab 09", today=TODAY) in (True, False)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "yes",
            "no",
            "3",
            " 2.5 ",
            "-.5",
            "2026-11-23",
            "leak odour",
            "abc",
            "2026-11-23T09:30:00+08:00",
            "0001-01-01",
            "9999-12-31",
            "%Y %Q",
        ]
    ),  # fmt: skip
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
FIELDS = ["a", "b", "c"]
VALID = [
    "${a}",
    ".",
    "${a} + ${b} - ${c}",
    "${a} * ${b} div ${c} mod ${a}",
    "-${a}",
    "${a} = ${b} or ${a} != ${c}",
    "${a} < ${b} and ${b} <= ${c} or ${a} > . or . >= ${c}",
    "not(${a})",
    "if(${a}, ${b}, ${c})",
    "selected(${a}, ${b})",
    "count-selected(${a}) + string-length(${b})",
    "today() = ${a}",
    "true() = ${a} or false() = ${b}",
    "number(${a})",
    "int(${a})",
    "round(${a}, ${b})",
    "round(${a})",
    "coalesce(${a}, ${b})",
    "concat(${a}, ${b}, ., 1 div 3)",
    "regex(${a}, '^[0-9]+$')",
    "regex(., '^1[3-9]\\d{9}$')",
    "100 - 10 * count-selected(${a})",
    "concat(contains(${a}, ${b}), starts-with(${a}, ${b}), ends-with(${a}, .))",
    "substr(${a}, ${b}, ${c})",
    "concat(substring-before(${a}, ${b}), substring-after(${a}, ${c}))",
    "translate(${a}, ${b}, ${c})",
    "normalize-space(${a})",
    "join(${a}, ${b})",
    "join(${a}, ${b}, ${c}, .)",
    "pow(${a}, ${b}) + abs(${c})",
    "sqrt(${a}) + log(${b}) + log10(${c}) + exp(.)",
    "ceiling(${a}) + floor(${b}) + pi()",
    "boolean(${a}) = boolean-from-string(${b})",
    "selected-at(${a}, ${b})",
    "date(${a})",
    "${a} - ${b}",
    "decimal-date-time(${a})",
    "format-date(${a}, ${b})",
    "format-date-time(${a}, '%Y-%m-%d %H:%M:%S.%3 %a %b %e %n %h %y')",
    "count-non-empty(${a}) + sum(${b}) + max(${c}) + min(${a}, ${b})",
    "checklist(${a}, ${b}, ${c}, .)",
    "weighted-checklist(${a}, ${b}, ${c}, .)",
    "once(${a})",
    "uuid(${a})",
    "count(${a}) + count-non-empty(${b}) + sum(${c}) + max(${a}) + min(${b})",
    "join(${a}, ${b}) = join(',', ${a}, ${c})",
    "indexed-repeat(${a}, ${b}, ${c}) = indexed-repeat(${a}, ${b}, position(..) - 1)",
    "if(${a}, ${b}, ${c}) + sum(if(${a}, ${b}, ${c}))",
    "digest(${a}, ${b}, ${c})",
    "digest(${a}, 'SHA-512')",
    "distance(${a}, ${b}, .) + area(${c})",
    "area(.)",
    "name = ${a} or county != ${b}",
]
nodesets = st.lists(json_values, max_size=4).map(expr.Nodeset)
geo_values = st.one_of(
    st.fixed_dictionaries(
        {"lat": st.floats(-100, 100), "lon": st.floats(-200, 200)},
        optional={"accuracy": st.floats(0, 50)},
    ),
    st.sampled_from(["0 1 0 0; 0 91 0 0;", "24.3 109.4", "1 2;3 4;5 6", "x y", "91 0", ";"]),
)


@settings(max_examples=400)
@given(
    st.sampled_from(VALID),
    st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(
            json_values, nodesets, geo_values, st.lists(geo_values, max_size=3).map(expr.Nodeset)
        ),
    ),
    st.one_of(json_values, geo_values),
    st.integers(1, 100),
    st.dictionaries(st.sampled_from(["name", "county"]), json_values),
)
def test_evaluate_never_raises_and_returns_json(source, answers, current, position, choice):
    result = evaluate(
        source, answers, current=current, today=TODAY, position=position, choice=choice
    )
    assert result is None or isinstance(result, bool | int | float | str)
    assert result != ""
    if isinstance(result, float):
        assert math.isfinite(result)
    json.dumps(result, allow_nan=False)
    assert isinstance(truthy(result), bool)


field_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True)


@given(st.lists(field_names, min_size=1, max_size=6), st.data())
def test_references_finds_exactly_the_fields(names, data):
    templates = ["${%s}", "count-selected(${%s})", "-${%s}", "if(${%s}, 1, 2)", "(${%s} = 'x')"]
    parts = [data.draw(st.sampled_from(templates)) % name for name in names]
    decoy = "'${not_a_field}'"  # text inside a string literal is not a reference
    source = " + ".join(parts + [decoy])
    assert references(source) == frozenset(names)


def test_integers_up_to_2_53_come_out_as_int():
    # JSON output: 9007199254740992 rather than 9007199254740992.0 (killed mutants at the bound)
    assert type(evaluate("${x}", {"x": 2**53}, today=TODAY)) is int
    assert type(evaluate("${x}", {"x": -(2**53)}, today=TODAY)) is int
    assert type(evaluate("${x}", {"x": 2**53 + 2}, today=TODAY)) is float
    assert type(evaluate("${x}", {"x": 2.0}, today=TODAY)) is int


def test_now_needs_a_clock_and_takes_a_datetime():
    with pytest.raises(ExprError, match="now"):
        evaluate("now()", {}, today=TODAY)
    with pytest.raises(ExprError, match="now"):
        evaluate("now()", {}, today=TODAY, now="2026-11-23")  # a date is not a date-time
    tz = datetime.timezone(datetime.timedelta(hours=8))
    now = datetime.datetime(2026, 11, 23, 9, 30, tzinfo=tz)
    assert evaluate("now()", {}, today=TODAY, now=now) == "2026-11-23T09:30:00+08:00"


def test_empty_expression_error_is_at_column_1():
    with pytest.raises(ExprError, match="at column 1$") as caught:
        parse("")
    assert caught.value.position == 0


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        ("jr:choice-name(${a}, '${fruit}')", {"fruit"}),
        ("jr:choice-name(${a}, '/data/veg')", {"veg"}),
        ("jr:choice-name('x', 'kind')", {"kind"}),
        ("jr:choice-name(${a}, ${b})", set()),
        ("jr:choice-name('a', '')", {""}),
        ("concat(jr:choice-name('x', '${p}'), jr:choice-name(${y}, ' ${q} '))", {"p", "q"}),
        ("concat('${fruit}', ${a})", set()),
    ],
)
def test_choice_name_fields_are_the_fields_named_by_a_literal(source, fields):
    assert expr.choice_name_fields(source) == frozenset(fields)
