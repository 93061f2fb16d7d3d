"""Form definitions, their compiler and the built-in forms."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forms import compiler
from forms.compiler import DefinitionError, Validation, compile_form
from forms.definitions import (
    DEFINITIONS_DIR,
    get_builtin,
    get_compiled,
    latest_builtin,
    load_builtin,
    load_task_templates,
)

DAY = datetime.date(2026, 11, 20)

# A published version never changes. Editing one of these files fails this pin on purpose:
# add <id>.v<N+1>.json instead (and pin it here).
PINNED_SHA256 = {
    "facility_status.v1.json": "8f124e9a291a90c2e18e8c0298fb23badc19838d8d781512905b61f15ae1ae87",
    "fire.v1.json": "573ef3591a8f8b97a898a19cad7d3a6097e63a1df82b671737e89cbbc48d64cc",
    "monthly_task.v1.json": "5bd6c727129741612ff81cced85fe1d33c840d841f7ea2813b2f3831f8d29211",
    "rubbish.v1.json": "f815d550b49bc985848a486db2fcc6236315406111e4c7f7d9c77dc6e41d7ad0",
    "tidiness.v1.json": "839ede6d474db491d28667379ddfa0975ebb1074beff4c6eb769eb8635e5d299",
    "toilet.v1.json": "f8c2cd6549c56070c366873060db15c8916c9ae223dc9c66535564daf2e72b3e",
}

CHECKLIST = [
    "household_rubbish",
    "waterways",
    "farm_waste",
    "no_clutter",
    "no_posters",
    "no_illegal_building",
    "no_sewage",
    "livestock_penned",
    "no_black_water",
    "main_street",
    "doorstep_duties",
]


def photo(char: str = "a", **extra) -> dict:
    return {
        "sha256": char * 64,
        "captured_at": "2026-11-20T10:31:05+08:00",
        "position": {"lat": 24.33, "lon": 109.41, "accuracy": 12.0},
        **extra,
    }


def form(form_id: str):
    return get_compiled(latest_builtin()[form_id])


def codes(validation: Validation, name: str) -> list[str]:
    return [e["code"] for e in validation.errors.get(name, [])]


def toilet_answers(**overrides) -> dict:
    answers = {
        "toilet_type": "committee",
        "sanitary": True,
        "harmless": True,
        "construction": "septic3",
        "in_use": True,
        "open_to_public": True,
        "maintenance": True,
        "cleanliness": "clean",
        "hazards": [],
        "usage_notice": True,
        "phones_posted": True,
        "manure_emptied": True,
        "photo_outside": [photo("a")],
        "photo_inside": [photo("b")],
        "notes": "  村委公厕，保洁员每天打扫 ",
    }
    answers.update(overrides)
    return {k: v for k, v in answers.items() if v is not ...}


def tidiness_answers(**overrides) -> dict:
    answers = {"zone_type": "hamlet", **{k: "pass" for k in CHECKLIST}}
    answers.update(overrides)
    return answers


# ------------------------------------------------------------------------------ built-ins


def test_builtin_files_are_pinned_by_hash():
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DEFINITIONS_DIR.iterdir()}
    assert set(files) == set(PINNED_SHA256), "a definition file was added or removed: pin it"
    for name, digest in files.items():
        assert digest == PINNED_SHA256[name], (
            f"{name} changed: a published version never changes; add a new version file"
        )


def test_builtin_forms_load_sorted_and_compile():
    definitions = load_builtin()
    keys = [(d["id"], d["version"]) for d in definitions]
    assert keys == sorted(keys)
    assert {d["id"] for d in definitions} == {
        "facility_status",
        "toilet",
        "rubbish",
        "fire",
        "tidiness",
        "monthly_task",
    }
    targets = {d["id"]: d["target"] for d in definitions}
    assert targets == {
        "toilet": "toilet",
        "rubbish": "rubbish",
        "fire": "fire",
        "tidiness": "zone",
        "facility_status": "facility",
        "monthly_task": "task",
    }
    for definition in definitions:
        compiled = compile_form(definition)
        assert (compiled.id, compiled.version) == (definition["id"], definition["version"])
        assert get_compiled(definition) is get_compiled(copy.deepcopy(definition))
        for spec in definition["fields"]:  # every label bilingual, Chinese actually Chinese
            assert re.search(r"[\u4e00-\u9fff]", spec["label"]["zh"]), spec["name"]
    assert get_builtin("toilet", 1)["id"] == "toilet"
    assert get_builtin("toilet", 99) is None


def test_task_templates_match_the_monthly_form():
    templates = load_task_templates()
    keys = [t["key"] for t in templates]
    assert keys == [
        "party_day",
        "three_meetings",
        "dispute_screening",
        "public_affairs",
        "collective_income",
        "reserve_cadres",
        "village_cleaning",
    ]
    for t in templates:
        assert set(t) == {"key", "title", "per_month", "evidence_photo"}
        assert t["per_month"] in (1, 2) and isinstance(t["evidence_photo"], bool)
        assert t["title"]["zh"] and t["title"]["en"]
    assert {t["key"]: t["per_month"] for t in templates}["dispute_screening"] == 2
    monthly = latest_builtin()["monthly_task"]
    kind = next(f for f in monthly["fields"] if f["name"] == "task_kind")
    assert [c["value"] for c in kind["choices"]] == keys

    # evidence_photo in the templates is exactly where the form requires a photo when done
    compiled = get_compiled(monthly)
    for t in templates:
        v = compiled.validate({"task_kind": t["key"], "status": "done"}, observed_on=DAY)
        photo_errors = [
            n for n in ("evidence_photos", "notice_board_photo") if "required" in codes(v, n)
        ]
        assert bool(photo_errors) == t["evidence_photo"], t["key"]


# ------------------------------------------------------------------------------ toilet


def test_toilet_complete_public_toilet():
    v = form("toilet").validate(toilet_answers(), observed_on=DAY)
    assert v.errors == {}
    assert v.dropped == []
    assert v.answers["notes"] == "村委公厕，保洁员每天打扫"
    assert v.updates == {
        "toilet_type": "committee",
        "sanitary": True,
        "harmless": True,
        "construction": "septic3",
        "in_use": True,
        "open_to_public": True,
        "hazards": [],
        "last_inspected": "2026-11-20",
    }
    assert [(p["field"], p["sha256"]) for p in v.photos] == [
        ("photo_outside", "a" * 64),
        ("photo_inside", "b" * 64),
    ]


def test_toilet_household_not_sanitary():
    answers = toilet_answers(
        toilet_type="household",
        sanitary=False,
        harmless=...,
        construction="other",
        open_to_public=...,
        maintenance=...,
        cleanliness=...,
    )
    v = form("toilet").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.updates["harmless"] is False  # not sanitary, so not harmless either
    assert v.updates["sanitary"] is False
    assert "open_to_public" not in v.updates  # a household toilet has no opening hours
    assert "harmless" not in v.answers


def test_toilet_hazard_requires_hazard_photo():
    answers = toilet_answers(hazards=["leaking", "cover_missing"])
    v = form("toilet").validate(answers, observed_on=DAY)
    assert codes(v, "photo_hazard") == ["required"]
    assert v.errors["photo_hazard"][0]["message"]["zh"] == "请拍照，至少 1 张"
    assert v.updates == {}

    answers["photo_hazard"] = [photo("c")]
    v = form("toilet").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.updates["hazards"] == ["leaking", "cover_missing"]
    assert [p["field"] for p in v.photos] == ["photo_outside", "photo_inside", "photo_hazard"]


def test_toilet_other_hazard_needs_description():
    answers = toilet_answers(hazards=["other"], photo_hazard=[photo("c")])
    v = form("toilet").validate(answers, observed_on=DAY)
    assert codes(v, "hazard_other") == ["required"]
    answers["hazard_other"] = "化粪池旁边塌陷"
    assert form("toilet").validate(answers, observed_on=DAY).errors == {}


def test_required_photo_missing():
    answers = toilet_answers(photo_inside=...)
    v = form("toilet").validate(answers, observed_on=DAY)
    assert codes(v, "photo_inside") == ["required"]
    assert v.errors["photo_inside"][0]["message"] == {
        "zh": "请拍照，至少 1 张",
        "en": "Take at least 1 photo(s)",
    }


def test_required_answer_missing_says_so_in_chinese():
    v = form("toilet").validate(toilet_answers(sanitary=None, notes=""), observed_on=DAY)
    assert codes(v, "sanitary") == ["required"]
    assert v.errors["sanitary"][0]["message"]["zh"] == "必须选择"
    v = form("toilet").validate(toilet_answers(toilet_type=...), observed_on=DAY)
    assert codes(v, "toilet_type") == ["required"]


# ------------------------------------------------------------------------------ rubbish


def test_rubbish_complete_and_overflow_photo():
    answers = {
        "rubbish_type": "transfer_station",
        "running": True,
        "maintenance": True,
        "cleaner_named": True,
        "cleaner_name": "韦大姐 138xxxx",
        "fixed_point": True,
        "cleared_on_schedule": False,
        "last_cleared": "2026-11-18",
        "overflow": True,
        "sorted": False,
        "surroundings_clean": False,
        "photos": [photo("a")],
    }
    v = form("rubbish").validate(answers, observed_on=DAY)
    assert codes(v, "photo_overflow") == ["required"]
    answers["photo_overflow"] = [photo("b")]
    v = form("rubbish").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.updates == {
        "rubbish_type": "transfer_station",
        "running": True,
        "last_cleared": "2026-11-18",
        "overflow": True,
        "sorted": False,
        "last_inspected": "2026-11-20",
    }


def test_date_constraint_not_in_the_future():
    answers = {
        "rubbish_type": "bin_group",
        "running": True,
        "maintenance": True,
        "cleaner_named": False,
        "fixed_point": True,
        "cleared_on_schedule": True,
        "last_cleared": "2026-11-21",
        "overflow": False,
        "sorted": True,
        "surroundings_clean": True,
        "photos": [photo("a")],
    }
    v = form("rubbish").validate(answers, observed_on=DAY)
    assert codes(v, "last_cleared") == ["constraint"]
    assert v.errors["last_cleared"][0]["message"]["zh"] == "日期不能晚于今天"
    assert v.updates == {}
    # the same answers observed a day later are fine: today() is the observation date
    v = form("rubbish").validate(answers, observed_on=DAY + datetime.timedelta(days=1))
    assert v.errors == {}


# ------------------------------------------------------------------------------ fire


def fire_answers(**overrides) -> dict:
    answers = {
        "fire_type": "micro_station",
        "equipment_complete": True,
        "extinguisher_count": 6,
        "extinguishers_in_date": True,
        "pressure_normal": True,
        "next_expiry": "2027-05-01",
        "access_clear": True,
        "on_duty": True,
        "duty_contact": "志愿消防队 黄队长",
        "photos": [photo("a"), photo("b")],
    }
    answers.update(overrides)
    return {k: v for k, v in answers.items() if v is not ...}


def test_fire_complete():
    v = form("fire").validate(fire_answers(), observed_on=DAY)
    assert v.errors == {}
    assert v.updates == {
        "fire_type": "micro_station",
        "equipment_ok": True,
        "extinguisher_count": 6,
        "next_expiry": "2027-05-01",
        "access_clear": True,
        "last_inspected": "2026-11-20",
    }


def test_fire_low_pressure_means_equipment_not_ok():
    v = form("fire").validate(fire_answers(pressure_normal=False), observed_on=DAY)
    assert v.errors == {}
    assert v.updates["equipment_ok"] is False


def test_fire_publicity_point_boards_and_no_extinguishers():
    answers = fire_answers(
        fire_type="publicity_point",
        extinguisher_count=0,
        extinguishers_in_date=...,
        pressure_normal=...,
        next_expiry=...,
    )
    v = form("fire").validate(answers, observed_on=DAY)
    assert codes(v, "boards_ok") == ["required"]
    answers["boards_ok"] = True
    v = form("fire").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.updates["equipment_ok"] is True
    assert "next_expiry" not in v.updates


def test_constraint_on_integer():
    v = form("fire").validate(fire_answers(extinguisher_count=-1), observed_on=DAY)
    assert codes(v, "extinguisher_count") == ["constraint"]


# ------------------------------------------------------------------------------ tidiness


def test_tidiness_all_pass():
    v = form("tidiness").validate(tidiness_answers(notes="很干净"), observed_on=DAY)
    assert v.errors == {}
    assert v.updates == {
        "zone_type": "hamlet",
        "score": 100,
        "grade": "优",
        "failed_items": [],
        "last_inspected": "2026-11-20",
    }


def test_tidiness_score_grade_and_failed_photos():
    answers = tidiness_answers(
        waterways="fail",
        no_posters="fail",
        no_black_water="na",
        main_street="na",
        score=100,  # the phone's values are ignored: the server recomputes them
        grade="优",
        failed_items=[],
    )
    v = form("tidiness").validate(answers, observed_on=DAY)
    assert codes(v, "waterways_photo") == ["required"]
    assert codes(v, "no_posters_photo") == ["required"]
    assert set(v.errors) == {"waterways_photo", "no_posters_photo"}

    answers["waterways_photo"] = [photo("a")]
    answers["no_posters_photo"] = [photo("b"), photo("c")]
    v = form("tidiness").validate(answers, observed_on=DAY)
    assert v.errors == {}
    # 7 passed, 2 failed, 2 not applicable: 100 * 7 / 9 = 77.8 -> 78 -> 良
    assert v.answers["passed_count"] == 7
    assert v.answers["failed_count"] == 2
    assert v.updates["score"] == 78
    assert v.updates["grade"] == "良"
    assert v.updates["failed_items"] == ["waterways", "no_posters"]
    assert len(v.photos) == 3


@pytest.mark.parametrize(
    ("failed", "score", "grade"),
    [(0, 100, "优"), (1, 91, "优"), (2, 82, "良"), (3, 73, "中"), (4, 64, "中"), (5, 55, "差")],
)
def test_tidiness_grade_bands(failed, score, grade):
    answers = tidiness_answers()
    for key in CHECKLIST[:failed]:
        answers[key] = "fail"
        answers[f"{key}_photo"] = [photo("d")]
    v = form("tidiness").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert (v.updates["score"], v.updates["grade"]) == (score, grade)


def test_tidiness_all_not_applicable_has_no_score():
    v = form("tidiness").validate(tidiness_answers(**{k: "na" for k in CHECKLIST}), observed_on=DAY)
    assert v.errors == {}
    assert "score" not in v.updates and "grade" not in v.updates
    assert v.updates["failed_items"] == []


# ------------------------------------------------------------------------------ monthly tasks


def test_monthly_party_day_done():
    answers = {
        "task_kind": "party_day",
        "status": "done",
        "completed_on": "2026-11-15",
        "party_topic": "学习二十届四中全会精神",
        "party_attendance": 23,
        "evidence_photos": [photo("a")],
        "notes": "在村委会议室",
    }
    v = form("monthly_task").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.updates == {
        "status": "done",
        "completed_on": "2026-11-15",
        "notes": "在村委会议室",
        "party_topic": "学习二十届四中全会精神",
        "party_attendance": 23,
    }


def test_monthly_other_kind_answers_are_dropped():
    answers = {
        "task_kind": "dispute_screening",
        "status": "in_progress",
        "disputes_found": 3,
        "disputes_resolved": 2,
        "party_topic": "不该出现",  # belongs to the party day
        "completed_on": "2026-11-10",  # only asked when done
    }
    v = form("monthly_task").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.dropped == ["completed_on", "party_topic"]
    assert "party_topic" not in v.answers and "completed_on" not in v.answers
    assert v.updates == {"status": "in_progress", "disputes_found": 3, "disputes_resolved": 2}


def test_monthly_cross_field_constraint_and_calculation():
    base = {"task_kind": "dispute_screening", "status": "done", "completed_on": "2026-11-16"}
    v = form("monthly_task").validate(
        {**base, "disputes_found": 1, "disputes_resolved": 2}, observed_on=DAY
    )
    assert codes(v, "disputes_resolved") == ["constraint"]
    assert v.errors["disputes_resolved"][0]["message"]["zh"] == "化解件数不能多于排查出的件数"

    v = form("monthly_task").validate(
        {
            "task_kind": "collective_income",
            "status": "done",
            "completed_on": "2026-11-16",
            "income_to_date": 4.2,
            "income_target": 5,
            "income_progress": 1,  # ignored
        },
        observed_on=DAY,
    )
    assert v.errors == {}
    assert v.updates["income_progress"] == 84
    assert v.updates["income_to_date"] == 4.2


def test_monthly_public_affairs_needs_notice_board_photo():
    answers = {
        "task_kind": "public_affairs",
        "status": "done",
        "completed_on": "2026-11-05",
        "affairs_published": ["village", "party", "finance"],
    }
    v = form("monthly_task").validate(answers, observed_on=DAY)
    assert codes(v, "notice_board_photo") == ["required"]
    answers["notice_board_photo"] = [photo("e")]
    v = form("monthly_task").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.updates["affairs_published"] == ["village", "party", "finance"]
    assert v.photos[0]["field"] == "notice_board_photo"


# ------------------------------------------------------------------------------ rule codes


def test_type_errors_in_plain_chinese():
    v = form("fire").validate(
        fire_answers(access_clear="yes", next_expiry="2027/05/01", duty_contact=5),
        observed_on=DAY,
    )
    for name in ("access_clear", "next_expiry", "duty_contact"):
        assert codes(v, name) == ["type"], name
    assert v.errors["access_clear"][0]["message"]["zh"] == "请选择“是”或“否”"
    assert v.errors["next_expiry"][0]["message"]["zh"].startswith("日期格式不对")
    assert v.updates == {}
    # a count that is not a number: its error is reported, and the questions that depend
    # on it (in date, pressure, expiry) are hidden, so their answers are dropped
    v = form("fire").validate(fire_answers(extinguisher_count="六"), observed_on=DAY)
    assert codes(v, "extinguisher_count") == ["type"]
    assert v.errors["extinguisher_count"][0]["message"]["zh"] == "请填写整数（如 3）"
    assert v.dropped == ["extinguishers_in_date", "pressure_normal", "next_expiry"]
    # booleans are not numbers, and integral floats are fine as integers
    assert codes(
        form("fire").validate(fire_answers(extinguisher_count=True), observed_on=DAY),
        "extinguisher_count",
    ) == ["type"]
    assert form("fire").validate(fire_answers(extinguisher_count=6.0), observed_on=DAY).ok


def test_choice_error():
    v = form("toilet").validate(toilet_answers(construction="pit"), observed_on=DAY)
    assert codes(v, "construction") == ["choice"]
    v = form("toilet").validate(toilet_answers(hazards=["leaking", "ghosts"]), observed_on=DAY)
    assert codes(v, "hazards") == ["choice"]


def test_photo_count_and_shape():
    many = [photo(c) for c in "abcdef"]
    v = form("fire").validate(fire_answers(photos=many), observed_on=DAY)
    assert codes(v, "photos") == ["count"]
    assert v.errors["photos"][0]["message"]["zh"] == "照片太多，最多 5 张"

    bad = [{"sha256": "XYZ", "captured_at": None, "position": None}]
    assert codes(form("fire").validate(fire_answers(photos=bad), observed_on=DAY), "photos") == [
        "type"
    ]
    twice = [photo("a"), photo("a")]
    assert codes(form("fire").validate(fire_answers(photos=twice), observed_on=DAY), "photos") == [
        "duplicate"
    ]
    # captured_at and position may be null (docs/CONTRACTS.md)
    bare = [{"sha256": "f" * 64, "captured_at": None, "position": None}]
    assert form("fire").validate(fire_answers(photos=bare), observed_on=DAY).ok


def test_photo_min_count():
    definition = minimal_definition(
        fields=[
            {"name": "p", "type": "photo", "label": T, "min_count": 2, "max_count": 3},
        ],
        updates={},
    )
    compiled = compile_form(definition)
    assert compiled.validate({}, observed_on=DAY).ok  # not required: no photo is fine
    v = compiled.validate({"p": [photo("a")]}, observed_on=DAY)
    assert codes(v, "p") == ["count"]
    assert v.errors["p"][0]["message"]["zh"] == "请拍照，至少 2 张"


def test_unknown_field_and_read_only_observed_on():
    v = form("toilet").validate(
        toilet_answers(colour="red", observed_on="2020-01-01"), observed_on=DAY
    )
    assert codes(v, "colour") == ["unknown_field"]
    assert v.errors["colour"][0]["message"]["zh"] == "表单里没有这一项"
    assert codes(v, "observed_on") == ["read_only"]
    assert v.updates == {}


def test_hidden_answer_dropped_and_reported():
    # harmless is asked only for sanitary toilets; open_to_public only for public ones
    answers = toilet_answers(
        toilet_type="household",
        sanitary=False,
        harmless=True,
        open_to_public=True,
        maintenance=...,
        cleanliness=...,
    )
    v = form("toilet").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.dropped == ["harmless", "open_to_public"]
    assert "harmless" not in v.answers and "open_to_public" not in v.answers
    assert v.updates["harmless"] is False


def test_hidden_answer_with_a_bad_value_is_dropped_not_judged():
    answers = toilet_answers(toilet_type="household", sanitary=False, harmless="maybe")
    answers.pop("open_to_public")
    answers.pop("maintenance")
    answers.pop("cleanliness")
    v = form("toilet").validate(answers, observed_on=DAY)
    assert v.errors == {}
    assert v.dropped == ["harmless"]


def test_answers_not_an_object():
    v = form("toilet").validate(["not", "a", "dict"], observed_on=DAY)  # type: ignore[arg-type]
    assert codes(v, "_form") == ["type"]
    assert v.updates == {} and v.answers == {}


def test_note_answers_are_ignored():
    v = form("toilet").validate(toilet_answers(recheck_note="x"), observed_on=DAY)
    assert v.ok and "recheck_note" not in v.answers


# ------------------------------------------------------------------------------ definition checks

T = {"zh": "问题", "en": "Question"}


def minimal_definition(**overrides) -> dict:
    definition = {
        "id": "demo",
        "version": 1,
        "target": "toilet",
        "title": {"zh": "示例", "en": "Demo"},
        "fields": [
            {"name": "sanitary", "type": "yes_no", "label": T, "required": True},
            {"name": "why", "type": "text", "label": T, "relevant": "not(${sanitary})"},
        ],
        "updates": {"sanitary": "${sanitary}", "last_inspected": "${observed_on}"},
    }
    definition.update(overrides)
    return definition


def problems_of(definition) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        compile_form(definition)
    return info.value.problems


def test_minimal_definition_compiles():
    compiled = compile_form(minimal_definition())
    v = compiled.validate({"sanitary": False, "why": "旱厕"}, observed_on=DAY)
    assert v.ok and v.updates == {"sanitary": False, "last_inspected": "2026-11-20"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["fields"].append(dict(d["fields"][0])), "duplicate name"),
        (lambda d: d["fields"][1].update(type="essay"), "unknown type"),
        (lambda d: d["fields"][1].update(relevant="${sanitary} = = 1"), "cannot parse"),
        (lambda d: d["fields"][1].update(relevant="${nothing}"), "unknown field ${nothing}"),
        (lambda d: d["fields"][1].update(constraint="bogus(.)"), "cannot parse"),
        (lambda d: d["fields"][1].update(required="${ghost} > 1"), "unknown field ${ghost}"),
        (lambda d: d["fields"][1].update(type="select_one"), "needs a non-empty list of choices"),
        (
            lambda d: d["fields"][1].update(
                type="select_many", choices=[{"value": "a", "label": T}] * 2
            ),
            "duplicate choice value",
        ),
        (lambda d: d["fields"][1].update(choices=[{"value": "a", "label": T}]), "not allowed"),
        (lambda d: d["fields"][1].update(requird=True), "'requird' is not allowed"),
        (lambda d: d["fields"][1].update(label={"zh": "只有中文"}), "label"),
        (lambda d: d["fields"][1].update(name="Bad Name"), "name"),
        (lambda d: d["fields"][1].update(name="observed_on"), "reserved"),
        (lambda d: d["fields"][1].update(type="calculate"), "exactly one of calculation"),
        (lambda d: d["fields"][1].update(type="photo", min_count=3, max_count=1), "max_count"),
        (lambda d: d["fields"][1].update(default=5), "default"),
        (lambda d: d.update(target="school"), "target"),
        (lambda d: d.update(version=0), "version"),
        (lambda d: d.update(version=True), "version"),
        (lambda d: d.update(fields=[]), "non-empty list"),
        (lambda d: d.update(colour="red"), "unknown top-level key"),
        (lambda d: d["updates"].update(score="${sanitary}"), "not a record field of toilet"),
        (lambda d: d["updates"].update(in_use="${nobody}"), "unknown field ${nobody}"),
        (
            lambda d: (
                d["fields"].append({"name": "n", "type": "note", "label": T})
                or d["fields"][1].update(relevant="${n}")
            ),
            "is a note",
        ),
        (
            lambda d: d["fields"].extend(
                [
                    {"name": "a", "type": "calculate", "label": T, "calculation": "${b} + 1"},
                    {"name": "b", "type": "calculate", "label": T, "calculation": "${a} + 1"},
                ]
            ),
            "circular",
        ),
        (
            lambda d: d["fields"].append(
                {
                    "name": "c",
                    "type": "calculate",
                    "label": T,
                    "names_where": {"fields": ["missing"], "equals": "fail"},
                }
            ),
            "unknown field 'missing'",
        ),
    ],
)
def test_definition_checker_catches(change, needle):
    definition = minimal_definition()
    change(definition)
    problems = problems_of(definition)
    assert any(needle in p for p in problems), problems


def test_definition_checker_lists_every_problem():
    definition = minimal_definition(target="school", version=-1)
    definition["fields"][1]["relevant"] = "${ghost}"
    definition["fields"].append({"name": "x", "type": "select_one", "label": T})
    problems = problems_of(definition)
    assert len(problems) >= 4, problems
    with pytest.raises(ValueError, match="problem"):
        compile_form(definition)
    assert problems_of("not a dict") == ["definition must be a JSON object"]


def test_forward_references_are_evaluated_in_dependency_order():
    definition = minimal_definition(
        fields=[
            {"name": "total", "type": "calculate", "label": T, "calculation": "${a} + ${b}"},
            {"name": "big", "type": "text", "label": T, "relevant": "${total} > 10"},
            {"name": "a", "type": "integer", "label": T},
            {"name": "b", "type": "integer", "label": T},
        ],
        updates={},
    )
    compiled = compile_form(definition)
    v = compiled.validate({"a": 6, "b": 7, "big": "yes"}, observed_on=DAY)
    assert v.ok and v.answers["total"] == 13 and v.answers["big"] == "yes"
    v = compiled.validate({"a": 1, "b": 2, "big": "yes"}, observed_on=DAY)
    assert v.dropped == ["big"]


# ------------------------------------------------------------------------------ robustness

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _field_names() -> list[str]:
    names = {"observed_on", "colour"}
    for definition in load_builtin():
        names |= {f["name"] for f in definition["fields"]}
    return sorted(names)


FIELD_NAMES = _field_names()


def _plausible_value() -> st.SearchStrategy:
    choices = st.sampled_from(["pass", "fail", "na", "done", "party_day", "household", "leaking"])
    return (
        JSON
        | choices
        | st.lists(choices, max_size=3)
        | st.lists(st.builds(photo, st.sampled_from("abc")), max_size=6)
        | st.sampled_from(["2026-11-20", "2026-13-01", "2026-11-20T10:00:00+08:00"])
    )


ANSWERS = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=10), _plausible_value(), max_size=25
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    form_id=st.sampled_from(["toilet", "rubbish", "fire", "tidiness", "monthly_task"]),
    answers=ANSWERS | JSON,
    day=st.dates(),
)
def test_validate_never_raises(form_id, answers, day):
    v = form(form_id).validate(answers, observed_on=day)
    assert isinstance(v, Validation)
    assert isinstance(v.errors, dict)
    for name, errs in v.errors.items():
        for err in errs:
            assert err["code"] and err["message"]["zh"] and err["message"]["en"], name
    if v.errors:
        assert v.updates == {}
    json.dumps([v.answers, v.errors, v.dropped, v.updates, v.photos])  # all JSON-able
    for name in v.dropped:
        assert name not in v.answers


def test_compiler_module_exports():
    assert compiler.FIELD_TYPES >= {"photo", "calculate", "note", "geopoint", "datetime"}
    assert compiler.TARGETS == {"toilet", "rubbish", "fire", "zone", "task", "facility"}


def test_photo_hash_with_a_trailing_newline_is_refused():
    form = compile_form(next(d for d in load_builtin() if d["id"] == "toilet"))
    bad = [{"sha256": "a" * 64 + "\n", "captured_at": None, "position": None}]
    result = form.validate({"photo_outside": bad}, observed_on=datetime.date(2026, 11, 20))
    assert "photo_outside" in result.errors


def test_number_and_text_boundaries():
    form = compile_form(
        minimal_definition(
            fields=[
                {"name": "n", "type": "integer", "label": T},
                {"name": "d", "type": "decimal", "label": T},
            ],
            updates={},
        )
    )

    def errors(**answers):
        return sorted(form.validate(answers, observed_on=DAY).errors)

    assert errors(n=float(2**53 - 1), d=2**53 - 1) == []
    assert form.validate({"n": float(2**53 - 1)}, observed_on=DAY).answers == {"n": 2**53 - 1}
    assert errors(n=float(2**53)) == ["n"]  # a float: beyond the safe integers
    assert errors(n=2**53, d=-(2**53)) == ["d", "n"]
    assert errors(d=float(2**53)) == []  # a float decimal may be large


def _names_where(rule) -> dict:
    return {"name": "c", "type": "calculate", "label": T, "names_where": rule}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.update(id=5), "id must be"),
        (lambda d: d.update(description={"zh": "只有中文"}), "description"),
        (lambda d: d["fields"][0].update(label={"zh": "", "en": "x"}), "label"),
        (lambda d: d["fields"][1].update(relevant="  "), "non-empty string"),
        (lambda d: d["fields"][1].update(type="select_one", choices=[]), "non-empty list"),
        (
            lambda d: d["fields"][1].update(type="select_one", choices=[{"value": "a"}]),
            "choices[0] must be",
        ),
        (
            lambda d: d["fields"][1].update(type="select_one", choices=[{"value": 5, "label": T}]),
            "choice value 5",
        ),
        (lambda d: d["fields"].append(_names_where("x")), "names_where must be"),
        (lambda d: d["fields"].append(_names_where({"fields": [], "equals": "a"})), "non-empty"),
        (
            lambda d: d["fields"].append(_names_where({"fields": ["why"], "equals": "a", "x": 1})),
            "names_where must be",
        ),
        (lambda d: d["fields"].append(_names_where({"fields": ["why", 5], "equals": "a"})), "list"),
        (
            lambda d: d["fields"].append(_names_where({"fields": ["why"], "equals": ""})),
            "names_where.equals",
        ),
        (  # a cycle through names_where: why is shown by the calculate that names it
            lambda d: (
                d["fields"].append(_names_where({"fields": ["why"], "equals": "a"}))
                or d["fields"][1].update(relevant="count-selected(${c}) = 0")
            ),
            "circular",
        ),
    ],
)
def test_definition_checker_catches_more(change, needle):
    definition = minimal_definition()
    change(definition)
    assert any(needle in p for p in problems_of(definition))


def test_datetime_length_bounds_on_the_server():
    # the server reads ISO 8601 with Python (a superset of what the phone makes), within 19 to
    # 40 characters: these shapes are refused by the phone and pinned here for the server
    form = compile_form(
        minimal_definition(fields=[{"name": "w", "type": "datetime", "label": T}], updates={})
    )

    def ok(text):
        return form.validate({"w": text}, observed_on=DAY).errors == {}

    assert ok("2026-11-20T10:31+08")  # 19 characters
    assert not ok("2026-11-20T103105Z")  # 18: a valid ISO form, refused by length
    assert ok("2026-11-20T10:31:05.12345678901234+08:00")  # 40
    assert not ok("2026-11-20T10:31:05.123456789012345+08:00")  # 41


def test_jr_choice_name_gives_the_chinese_label_and_must_name_a_select():
    text = {"zh": "类", "en": "Kind"}
    form = {
        "id": "labelled", "version": 1, "target": "toilet", "title": text,
        "fields": [
            {"name": "kind", "type": "select_one", "label": text,
             "choices": [{"value": "a", "label": {"zh": "甲", "en": "A"}},
                         {"value": "b", "label": {"zh": "乙", "en": "B"}}]},
            {"name": "kind_name", "type": "calculate", "label": text,
             "calculation": "jr:choice-name(${kind}, '${kind}')"},
        ],
        "updates": {},
    }  # fmt: skip
    day = datetime.date(2026, 11, 20)
    assert compiler.compile_form(form).validate({"kind": "b"}, observed_on=day).answers == {
        "kind": "b",
        "kind_name": "乙",
    }
    form["fields"][1]["calculation"] = "jr:choice-name(${kind}, '${kind_name}')"
    with pytest.raises(compiler.DefinitionError, match="names 'kind_name', not a select field"):
        compiler.compile_form(form)


@pytest.mark.parametrize("value", ["1", "2.5", "Yes", "卫生厕所", "option-a", "a_b", "x" * 64])
def test_choice_values_as_real_forms_write_them_are_accepted(value):
    text = {"zh": "类", "en": "Kind"}
    form = {
        "id": "values", "version": 1, "target": "toilet", "title": text, "updates": {},
        "fields": [{"name": "kind", "type": "select_many", "label": text,
                    "choices": [{"value": value, "label": text}]}],
    }  # fmt: skip
    day = datetime.date(2026, 11, 20)
    assert compiler.compile_form(form).validate({"kind": [value]}, observed_on=day).ok


@pytest.mark.parametrize(
    "value", ["", "a b", " a", "-1", ".5", "a'b", "=1+1", "@x", "x" * 65, "a\n", "a\tb"]
)
def test_choice_values_with_spaces_quotes_or_formula_signs_are_refused(value):
    text = {"zh": "类", "en": "Kind"}
    form = {
        "id": "values", "version": 1, "target": "toilet", "title": text, "updates": {},
        "fields": [{"name": "kind", "type": "select_one", "label": text,
                    "choices": [{"value": value, "label": text}]}],
    }  # fmt: skip
    with pytest.raises(compiler.DefinitionError, match="choice value"):
        compiler.compile_form(form)


def test_a_field_name_with_a_trailing_newline_is_refused():
    text = {"zh": "类", "en": "Kind"}
    form = {"id": "names", "version": 1, "target": "toilet", "title": text, "updates": {},
            "fields": [{"name": "kind\n", "type": "text", "label": text}]}  # fmt: skip
    with pytest.raises(compiler.DefinitionError, match="name"):
        compiler.compile_form(form)


def test_a_date_default_of_today_is_the_phones_to_fill_and_only_for_dates():
    text = {"zh": "日期", "en": "Date"}
    form = {
        "id": "dated", "version": 1, "target": "toilet", "title": text, "updates": {},
        "fields": [{"name": "checked_on", "type": "date", "label": text, "default": "today()"}],
    }  # fmt: skip
    day = datetime.date(2026, 11, 20)
    assert compiler.compile_form(form).validate({}, observed_on=day).answers == {}
    form["fields"][0]["type"] = "text"
    form["fields"][0]["default"] = 5
    with pytest.raises(compiler.DefinitionError, match="default 5 is not a valid text"):
        compiler.compile_form(form)
    form["fields"][0].update(type="integer", default="today()")
    with pytest.raises(compiler.DefinitionError, match="default 'today\\(\\)' is not a valid"):
        compiler.compile_form(form)
