"""The JavaScript twins in client_pwa/js/, run with `node --test tests/js/`.

The Python side writes fixtures into a temporary directory (VILLAGECHECK_JS_FIXTURES) with its
own answers: CompiledForm.validate on generated answer sets for every built-in form (and one
form using every field type), forms.expr on generated expressions and regex patterns, and
sync.clock on generated event sequences. The node tests compare the twins against them, so
the JavaScript and Python rules are checked to be the same, case by case.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from forms import expr
from forms.compiler import compile_form
from forms.definitions import load_builtin
from sync.clock import Clock, encode, receive, tick

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
TODAY = "2026-11-20"
NOW = "2026-11-20T10:31:05+08:00"  # observed_at: what now() gives


def photo(char: str, **extra) -> dict:
    return {
        "sha256": char * 64,
        "captured_at": "2026-11-20T10:31:05+08:00",
        "position": {"lat": 24.33, "lon": 109.41, "accuracy": 12.0},
        **extra,
    }


# ---------------------------------------------------------------- forms

CHECKLIST = [
    "household_rubbish", "waterways", "farm_waste", "no_clutter", "no_posters",
    "no_illegal_building", "no_sewage", "livestock_penned", "no_black_water", "main_street",
    "doorstep_duties",
]  # fmt: skip

# A form outside the built-ins that uses every field type but repeat, names_where on a
# select_many and a text, a relevance reading a later field, required-if, a regex constraint and
# chained calculations.
ALL_TYPES = {
    "id": "all_types",
    "version": 1,
    "target": "task",
    "title": {"zh": "全部类型", "en": "All types"},
    "fields": [
        {"name": "intro", "type": "note", "label": {"zh": "说明", "en": "Intro"}},
        {"name": "early", "type": "text", "label": {"zh": "早", "en": "Early"},
         "relevant": "${late} > 2"},
        {"name": "phone", "type": "text", "label": {"zh": "电话", "en": "Phone"},
         "constraint": "regex(., '^1[3-9]\\d{9}$')",
         "constraint_message": {"zh": "手机号不对", "en": "Bad mobile number"}},
        {"name": "amount", "type": "decimal", "label": {"zh": "金额", "en": "Amount"},
         "required": "${phone} != ''", "constraint": ". >= 0"},
        {"name": "when", "type": "datetime", "label": {"zh": "时间", "en": "When"}},
        {"name": "day", "type": "date", "label": {"zh": "日期", "en": "Day"},
         "constraint": ". <= today()"},
        {"name": "where", "type": "geopoint", "label": {"zh": "位置", "en": "Where"},
         "required": True},
        {"name": "tags", "type": "select_many", "label": {"zh": "标签", "en": "Tags"},
         "choices": [{"value": v, "label": {"zh": v, "en": v}} for v in ("red", "blue", "fail")]},
        {"name": "mood", "type": "select_one", "label": {"zh": "状态", "en": "Mood"},
         "choices": [{"value": v, "label": {"zh": v, "en": v}} for v in ("fail", "ok")]},
        {"name": "word", "type": "text", "label": {"zh": "词", "en": "Word"}},
        {"name": "shots", "type": "photo", "label": {"zh": "照片", "en": "Shots"},
         "min_count": 2, "max_count": 3, "relevant": "selected(${tags}, 'red')"},
        {"name": "late", "type": "integer", "label": {"zh": "晚", "en": "Late"}},
        {"name": "which", "type": "calculate", "label": {"zh": "哪些", "en": "Which"},
         "names_where": {"fields": ["tags", "mood", "word"], "equals": "fail"}},
        {"name": "double", "type": "calculate", "label": {"zh": "两倍", "en": "Double"},
         "calculation": "${amount} * 2"},
        {"name": "big", "type": "calculate", "label": {"zh": "大", "en": "Big"},
         "calculation": "${double} > 100", "relevant": "${amount} != ''"},
        {"name": "flag", "type": "yes_no", "label": {"zh": "是否", "en": "Flag"},
         "required": "${big}"},
    ],
    "updates": {"amount": "${amount}"},
}  # fmt: skip


def _t(text: str) -> dict:
    return {"zh": text, "en": text}


# A form with two repeats (one sized by repeat_count, one by min/max_count), per-instance
# relevance, calculates, photos, position(..), node-set functions across repeats, a
# choice_filter at the top level and inside a repeat, and required_message.
REPEATS = {
    "id": "repeats",
    "version": 1,
    "target": "task",
    "title": _t("重复组"),
    "fields": [
        {"name": "county", "type": "select_one", "label": _t("县"),
         "choices": [{"value": v, "label": _t(v)} for v in ("east", "west")]},
        {"name": "town", "type": "select_one", "label": _t("镇"), "required": True,
         "required_message": {"zh": "请选镇", "en": "Pick a town"},
         "choice_filter": "county = ${county} or ${county} = ''",
         "choices": [{"value": v, "label": _t(v), "properties": {"county": c}}
                     for v, c in (("e1", "east"), ("e2", "east"), ("w1", "west"))]},
        {"name": "n_rooms", "type": "integer", "label": _t("间数"), "constraint": ". <= 4"},
        {"name": "N_Text", "type": "text", "label": _t("间数文字")},
        {"name": "rooms", "type": "repeat", "label": _t("厕所间"),
         "repeat_count": "coalesce(${N_Text}, ${n_rooms})",
         "required": "${county} = 'east'",
         "required_message": {"zh": "请添加厕所间", "en": "Add the rooms"},
         "fields": [
             {"name": "room_note", "type": "note", "label": _t("说明")},
             {"name": "room_ok", "type": "yes_no", "label": _t("好"), "required": True,
              "required_message": {"zh": "好不好？", "en": "OK or not?"}},
             {"name": "why", "type": "text", "label": _t("为何"), "relevant": "not(${room_ok})",
              "required": "position(..) > 1", "constraint": "string-length(.) >= position(..)"},
             {"name": "room_photo", "type": "photo", "label": _t("照片"), "relevant": "${room_ok}",
              "required": True, "min_count": 1, "max_count": 2},
             {"name": "kind", "type": "select_many", "label": _t("种类"),
              "choice_filter": "position(..) > 1 or size != 'big' or now() = ''",
              "choices": [{"value": v, "label": _t(v), "properties": {"size": z}}
                          for v, z in (("squat", "small"), ("seat", "small"), ("bath", "big"))]},
             {"name": "idx", "type": "calculate", "label": _t("序"),
              "calculation": "position(..) * 10 + count(${rooms})"},
             {"name": "kinds_bath", "type": "calculate", "label": _t("浴"),
              "names_where": {"fields": ["kind"], "equals": "bath"}},
         ]},
        {"name": "checks", "type": "repeat", "label": _t("检查"), "min_count": 1,
         "max_count": 3, "relevant": "count(${rooms}) > 0",
         "fields": [
             {"name": "score", "type": "integer", "label": _t("分"),
              "constraint": ". <= sum(${idx}) + ${n_rooms}"},
             {"name": "item", "type": "text", "label": _t("项"), "required": "${score} > 3"},
         ]},
        {"name": "total", "type": "calculate", "label": _t("总"),
         "calculation": "sum(${idx}) + count(${checks}) + count-non-empty(${why})"},
        {"name": "best", "type": "calculate", "label": _t("最好"), "calculation": "max(${score})"},
        {"name": "first_why", "type": "calculate", "label": _t("第一"),
         "calculation": "indexed-repeat(${why}, ${rooms}, 2)"},
        {"name": "stamp", "type": "calculate", "label": _t("时刻"),
         "calculation": "format-date-time(now(), '%H:%M')"},
        {"name": "town_name", "type": "calculate", "label": _t("镇名"),
         "calculation": "concat(jr:choice-name(${town}, '${town}'), '/', "
                        "jr:choice-name(${kind}, '/data/kind'))"},
    ],
    "updates": {"status": "if(count(${rooms}) > 0, 'done', 'in_progress')",
                "income_progress": "sum(${score})"},
}  # fmt: skip

ROOM_OK = {"room_ok": True, "room_photo": [photo("a")], "kind": ["seat"]}
ROOM_BAD = {"room_ok": False, "why": "门坏了", "kind": ["bath", "squat"]}
REPEATS_BASE = {
    "county": "east", "town": "e2", "n_rooms": 2, "rooms": [ROOM_OK, ROOM_BAD],
    "checks": [{"score": 3}, {"score": 5, "item": "x"}],
}  # fmt: skip
#: Instances tried in place of the base's: each key of one instance, missing or wrong.
INSTANCE_POOL = [
    {}, {"room_ok": False}, {"room_ok": True}, {"why": "x"}, {"room_ok": False, "why": ""},
    {"room_ok": False, "why": " a "}, {"room_ok": True, "why": "hidden", "room_photo": []},
    {"room_ok": True, "room_photo": [photo("a"), photo("b"), photo("c")]},
    {"room_ok": True, "room_photo": [photo("a"), photo("a")]}, {"kind": ["bath"]},
    {"kind": ["nope"]}, {"kind": "seat"}, {"idx": 99, "room_note": "x"}, {"score": 3},
    {"observed_on": TODAY}, {"__proto__": 1}, {"score": 9, "item": ""}, {"score": "x"},
    {"room_ok": "yes"},
]  # fmt: skip

TOILET = {
    "toilet_type": "household", "sanitary": True, "harmless": True, "construction": "septic3",
    "in_use": True, "hazards": [], "usage_notice": True, "phones_posted": True,
    "manure_emptied": True, "photo_outside": [photo("a")], "photo_inside": [photo("b")],
}  # fmt: skip
RUBBISH = {
    "rubbish_type": "transfer_station", "running": True, "maintenance": True,
    "cleaner_named": True, "cleaner_name": "韦大姐", "fixed_point": True,
    "cleared_on_schedule": True, "last_cleared": "2026-11-18", "overflow": False,
    "sorted": True, "surroundings_clean": True, "photos": [photo("a"), photo("b")],
}  # fmt: skip
FIRE = {
    "fire_type": "micro_station", "equipment_complete": True, "extinguisher_count": 4,
    "extinguishers_in_date": True, "pressure_normal": True, "next_expiry": "2027-06-30",
    "access_clear": True, "on_duty": True, "duty_contact": "13812345678", "photos": [photo("c")],
}  # fmt: skip
TIDY = {"zone_type": "village", **{item: "pass" for item in CHECKLIST}}
TASK = {"status": "done", "completed_on": "2026-11-18", "evidence_photos": [photo("d")]}

BASES = {
    "toilet": [
        TOILET,
        {**TOILET, "toilet_type": "market", "market_grade_ok": True, "open_to_public": True,
         "maintenance": True, "cleanliness": "fair", "hazards": ["leaking", "other"],
         "hazard_other": "墙裂", "photo_hazard": [photo("c"), photo("d")], "notes": " 好 "},
        {**TOILET, "sanitary": False, "harmless": None, "construction": "sewer",
         "manure_emptied": None},
    ],
    "rubbish": [RUBBISH, {**RUBBISH, "overflow": True, "photo_overflow": [photo("e")]}],
    "fire": [
        FIRE,
        {**FIRE, "fire_type": "publicity_point", "boards_ok": True, "extinguisher_count": 0,
         "extinguishers_in_date": None, "pressure_normal": None, "next_expiry": None},
    ],
    "tidiness": [
        TIDY,
        {**TIDY, "waterways": "fail", "waterways_photo": [photo("a")], "no_posters": "na",
         "main_street": "fail", "main_street_photo": [photo("b"), photo("c")]},
        {**TIDY, **{item: "na" for item in CHECKLIST}},
    ],
    "monthly_task": [
        {"task_kind": "party_day", **TASK, "party_topic": "学习", "party_attendance": 31},
        {"task_kind": "three_meetings", **TASK, "meetings_held": ["members_meeting"]},
        {"task_kind": "dispute_screening", **TASK, "disputes_found": 3, "disputes_resolved": 2},
        {"task_kind": "public_affairs", "status": "done", "completed_on": "2026-11-01",
         "affairs_published": ["village", "finance"], "notice_board_photo": [photo("e")]},
        {"task_kind": "collective_income", **TASK, "income_to_date": 12.5, "income_target": 40},
        {"task_kind": "reserve_cadres", **TASK, "reserve_count": 2, "reserve_age40_count": 1},
        {"task_kind": "village_cleaning", **TASK, "cleaning_participants": 40,
         "cleaning_scope": "全村"},
        {"task_kind": "party_day", "status": "in_progress"},
    ],
    "repeats": [
        REPEATS_BASE,
        {"county": "west", "town": "w1", "rooms": [], "checks": [{"score": 1}]},
        {"county": "", "town": "e1", "n_rooms": 1, "rooms": [ROOM_BAD],
         "checks": [{"score": 4}] * 4},
    ],
    "all_types": [
        {"phone": "13812345678", "amount": 60, "when": "2026-11-20T10:31:05+08:00",
         "day": "2026-11-19", "where": {"lat": 24.3, "lon": 109.4, "accuracy": None},
         "tags": ["red", "fail", "red"], "mood": "fail", "word": "fail",
         "shots": [photo("a"), photo("b")], "late": 3, "early": "x", "flag": False},
        {"where": {"lat": -90, "lon": 180}},
    ],
}  # fmt: skip

# Values every field is tried with: right and wrong types, empties, edge cases.
POOL = [
    None, "", " ", "\t\u3000", "x", " fail ", "fail", "pass", "na", "red", "household", "done",
    "yes", "0", "12", 0, -0.0, 1, 3, -1, 1.5, 6.0, 1000, 1001, 2**53, 1e22, True, False, [],
    ["red"], ["red", "red"], ["x"], [1], ["leaking"], {}, {"lat": 1}, {"lat": 24.3, "lon": 109.4},
    {"lat": 91, "lon": 0}, {"lat": 1, "lon": 2, "accuracy": -1}, {"lat": True, "lon": 2},
    {"lat": 1, "lon": 2, "alt": 3}, "2026-11-20", "2026-11-21", "2026-02-29", "2024-02-29",
    "0000-01-01", "2026-11-20\n", "２０２６-11-20", "2026-11-20T10:31:05+08:00",
    "2026-11-20T10:31:05Z", "2026-11-20T10:31+08:00", "2026-11-20T10:31:05.123-03:30",
    "2026-11-20T10:31:05", "2026-11-20 10:31:05+08:00", "2026-11-20T24:00:00+08:00",
    "2026-02-30T10:00:00+08:00", "2026-11-20T10:31:60+08:00", "2026-11-20T10:31:05+24:00",
    "2026-11-20T10:31:05+08:00\n", "\x1c a \x85", "\ufeff a",
    "13812345678", [photo("a")], [photo("a"), photo("a")], [photo("a"), photo("b"), photo("c"),
    photo("d"), photo("e"), photo("f")], [{"sha256": "A" * 64}], [{"sha256": "a" * 63}],
    [{"sha256": "a" * 64, "captured_at": None, "position": None}], [{"sha256": "a" * 64, "x": 1}],
    [photo("a", captured_at="2026-11-20T10:31:05")], [photo("a", position={"lat": 1})],
    [photo("a", position={"lat": 1, "lon": 2})], ["a" * 64], "a" * 64,
    # boundaries: coordinates, accuracy 0, the largest safe integers, list lengths
    {"lat": -91, "lon": 0}, {"lat": 0, "lon": 181}, {"lat": 0, "lon": -181},
    {"lat": -90, "lon": -180, "accuracy": 0}, {"lat": 90, "lon": 180},
    2**53 - 1, -(2**53), float(2**53 - 1), ["red"] * 100, ["red"] * 101,
    [{"sha256": f"{i:064x}"} for i in range(100)], [{"sha256": f"{i:064x}"} for i in range(101)],
    {"lat": 1, "lon": 2, "accuracy": 2**53 - 1}, {"lat": 1, "lon": 2, "accuracy": 2**53},
    "2026-11-20T10:31:05.1234567890123+08:00", "2026-11-20T10:31:05.12345678901234+08:00",
    "2026-11-20T10:31:05.123456789012345+08:00",  # 39, 40 (the longest taken) and 41 characters
]  # fmt: skip


@functools.cache  # shared by both tests; nothing mutates it
def form_cases() -> tuple[dict, list[dict]]:
    definitions = {d["id"]: d for d in load_builtin()}
    definitions["all_types"] = ALL_TYPES
    definitions["repeats"] = REPEATS
    compiled = {key: compile_form(d) for key, d in definitions.items()}
    day = datetime.date.fromisoformat(TODAY)
    cases = []

    def add(form: str, answers, now: str | None = None) -> None:
        v = compiled[form].validate(copy.deepcopy(answers), observed_on=day, observed_at=now)
        expected = {"answers": v.answers, "errors": v.errors, "dropped": v.dropped,
                    "photos": v.photos}  # fmt: skip
        cases.append({"form": form, "today": TODAY, "now": now, "answers": answers,
                      "expected": expected})  # fmt: skip

    rand = random.Random(20261120)
    for form, bases in BASES.items():
        names = [f["name"] for f in definitions[form]["fields"]]
        for n, base in enumerate(bases):
            add(form, base)
            for name in names:
                add(form, {k: v for k, v in base.items() if k != name})
                for value in POOL if n == 0 else ():  # every field tried with every value
                    add(form, {**base, name: value})
            for _ in range(60):  # several fields wrong at once
                answers = dict(base)
                for name in rand.sample(names, rand.randint(2, 5)):
                    answers[name] = rand.choice(POOL)
                add(form, answers)
        add(form, {**bases[0], "observed_on": TODAY, "no_such_field": 1, "__proto__": 1})
        add(form, {"constructor": 1, "toString": "x"})
        for not_an_object in (None, [], "answers", 3):
            add(form, not_an_object)
    # repeats: every instance of the base replaced by each pool instance, instances added and
    # removed, and the hard cap
    for rep, size in (("rooms", 2), ("checks", 2)):
        for index in range(size):
            for instance in INSTANCE_POOL:
                items = [dict(i) for i in REPEATS_BASE[rep]]
                items[index] = instance
                add("repeats", {**REPEATS_BASE, rep: items}, NOW)
                add("repeats", {**REPEATS_BASE, rep: [*REPEATS_BASE[rep], instance]}, NOW)
        for value in POOL:  # each value in each key of the first instance
            for key in {"rooms": ["room_ok", "why", "room_photo", "kind"],
                        "checks": ["score", "item"]}[rep]:  # fmt: skip
                first = {**REPEATS_BASE[rep][0], key: value}
                add("repeats", {**REPEATS_BASE, rep: [first, *REPEATS_BASE[rep][1:]]}, NOW)
    for _ in range(150):
        answers = copy.deepcopy(REPEATS_BASE)
        for rep in ("rooms", "checks"):
            answers[rep] = [rand.choice(INSTANCE_POOL) for _ in range(rand.randint(0, 5))]
        answers["n_rooms"] = rand.choice([None, 0, 1, 2, 3, 4.0, 5, -1, "2", 2.5, 200])
        if rand.random() < 0.3:  # numeric text counts as XPath's number() reads it
            answers["N_Text"] = rand.choice(["", " 2 ", "1.9", "x", "-1", "3", ".5", "2e0"])
        answers["county"] = rand.choice(["east", "west", "", None, "north"])
        answers["town"] = rand.choice(["e1", "w1", "", None, "zz"])
        add("repeats", answers, rand.choice([NOW, NOW, "2026-11-20T23:59:59.5-03:30", None]))
    add("repeats", {**REPEATS_BASE, "n_rooms": None, "checks": [{}] * 101})
    add("repeats", {**REPEATS_BASE, "n_rooms": None, "checks": [{"score": 1}] * 3})
    add("repeats", {**REPEATS_BASE, "county": "west", "town": "w1", "n_rooms": 0, "rooms": []})
    for text in ("x" * 5000, "字" * 5001, "😀" * 5000, " " * 5001):  # length in code points
        add("all_types", {"where": {"lat": 1, "lon": 2}, "word": text, "phone": text})
    # answered while hidden: dropped, and its errors not reported
    add("toilet", {**TOILET, "harmless": "not a bool", "sanitary": False})
    add("monthly_task", {"task_kind": "party_day", "status": "done", "disputes_found": "x"})
    return definitions, cases


# ---------------------------------------------------------------- expressions

EXPR_CHARS = "${}()'\" .,=!<>+-*0123456789abcdefilmnorstuvx_[]\\^?|"
REGEX_CHARS = "ab0-9[]^$.|?*+(){},:=!\\dwsDWSbpu4e -村😀\n"
TEMPLATES = [
    "${a}", ".", "${a} + ${b} - ${c}", "${a} * ${b} div ${c} mod ${a}", "-${a}",
    "${a} = ${b} or ${a} != ${c}", "${a} < ${b} and ${b} <= ${c} or ${a} > . or . >= ${c}",
    "not(${a})", "if(${a}, ${b}, ${c})", "selected(${a}, ${b})",
    "count-selected(${a}) + string-length(${b})", "today() = ${a}", "${a} <= today()",
    "true() = ${a} or false() = ${b}", "number(${a})", "int(${a})", "round(${a}, ${b})",
    "round(${a})", "coalesce(${a}, ${b})", "concat(${a}, ${b}, ., 1 div 3)",
    "regex(${a}, '^[0-9]+$')", "regex(., '^1[3-9]\\d{9}$')", "100 - 10 * count-selected(${a})",
    "concat(${a} div ${b})", "${a} div ${b} * ${c}", "concat(${a} * 1.1, '|', ${b} div 7)",
]  # fmt: skip
SCALARS = [
    None, True, False, 0, -0.0, 1, 2, 7, -3, 0.1, 0.5, 1.005, 2.5, -2.5, 1e21, 1e-7, 123456.789,
    2**53, 1e300, "", " ", "yes", "no", "true", "3", " 2.5 ", "-.5", "1e3", "+5", "abc",
    "2026-11-20", "2026-12-01", "leak odour", "村", "😀", "１２", "a\nb",
]  # fmt: skip


def json_value(rand: random.Random, depth: int = 0):
    roll = rand.random()
    if depth < 2 and roll < 0.12:
        return [json_value(rand, depth + 1) for _ in range(rand.randint(0, 3))]
    if depth < 2 and roll < 0.18:
        return {k: json_value(rand, depth + 1) for k in rand.sample("xyz", rand.randint(0, 2))}
    if roll < 0.3:
        return rand.uniform(-1e4, 1e4) if rand.random() < 0.5 else rand.randint(-100, 100)
    return rand.choice(SCALARS)


def expr_cases() -> list[dict]:
    rand = random.Random(7)
    day = datetime.date.fromisoformat(TODAY)
    sources = [rand.choice(TEMPLATES) for _ in range(3000)]
    sources += ["".join(rand.choices(EXPR_CHARS, k=rand.randint(0, 30))) for _ in range(2000)]
    sources += [
        f"regex(${{a}}, '{''.join(rand.choices(REGEX_CHARS, k=rand.randint(0, 12)))}')"
        for _ in range(3000)
    ]
    cases = []
    for source in sources:
        answers = {name: json_value(rand) for name in "abc" if rand.random() < 0.9}
        if source.startswith("regex"):
            answers["a"] = "".join(rand.choices(REGEX_CHARS, k=rand.randint(0, 8)))
        current = json_value(rand)
        try:
            expected = {"result": expr.evaluate(source, answers, current=current, today=day)}
        except expr.ExprError:
            expected = {"error": "ExprError"}
        cases.append({"expr": source, "answers": answers, "current": current, "today": TODAY,
                      "expected": expected})  # fmt: skip
    return cases


# ---------------------------------------------------------------- clocks


def clock_cases() -> list[dict]:
    rand = random.Random(11)
    base = 1_795_000_000_000
    runs = []
    for _ in range(200):
        device = rand.choice(["p", "phone-7f3a", "a-b--c", "~!"])
        last = None
        if rand.random() < 0.5:
            last = Clock(base + rand.randint(-5, 5), rand.choice([0, 3, 0xFFFE, 0xFFFF]), device)
        run = {"device": device, "start": encode(last) if last else None, "steps": []}
        for _ in range(rand.randint(1, 20)):
            now = base + rand.choice([-(10**11), -1, 0, 0, 1, 2, 10**6]) + rand.randint(0, 3)
            remote = None
            if rand.random() < 0.5:
                remote = Clock(base + rand.randint(-3, 3), rand.choice([0, 7, 0xFFFF]), "server")
            last = receive(last, remote, now, device) if remote else tick(last, now, device)
            run["steps"].append({"now": now, "remote": encode(remote) if remote else None,
                                 "expected": encode(last)})  # fmt: skip
        runs.append(run)
    return runs


# ---------------------------------------------------------------- the run


def test_fixtures_cover_every_error_code():
    _, cases = form_cases()
    codes = {e["code"] for c in cases for errs in c["expected"]["errors"].values() for e in errs}
    assert codes >= {"required", "type", "choice", "constraint", "count", "duplicate",
                     "unknown_field", "read_only", "repeat_count"}  # fmt: skip
    assert any(c["expected"]["dropped"] for c in cases)
    assert any(not c["expected"]["errors"] for c in cases)
    # the repeat form is exercised where it matters: keys inside instances, hidden inner
    # answers dropped, a filtered choice refused, required_message used, valid answer sets
    rep = [c["expected"] for c in cases if c["form"] == "repeats"]
    keys = {k for e in rep for k in e["errors"]}
    assert {"rooms[2].why", "rooms[1].room_photo", "checks[2].item", "rooms", "checks", "town",
            "rooms[3].room_ok", "rooms[1].kind"} <= keys, sorted(keys)  # fmt: skip
    assert any("rooms[1].why" in e["dropped"] for e in rep)
    assert any(e["photos"] and e["photos"][0]["field"] == "rooms[1].room_photo" for e in rep)
    refused = [e for e in rep if any(x["code"] == "choice" for x in e["errors"].get("town", []))]
    assert refused
    messages = {x["message"]["zh"] for e in rep for errs in e["errors"].values() for x in errs}
    assert {"请选镇", "请添加厕所间", "好不好？"} <= messages
    assert sum(not e["errors"] for e in rep) >= 10


@pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript twins are untested")
def test_node_tests_pass(tmp_path):
    definitions, cases = form_cases()
    fixtures = {
        "form_cases.json": {"definitions": definitions, "cases": cases},
        "expr_cases.json": expr_cases(),
        "clock_cases.json": clock_cases(),
    }
    for name, data in fixtures.items():
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [NODE, "--test", "tests/js/"],
        cwd=ROOT,
        env={**os.environ, "VILLAGECHECK_JS_FIXTURES": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "# fail 0" in output and "# skipped 0" in output, output[-4000:]
