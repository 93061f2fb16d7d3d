"""Compile a form definition (JSON data, see docs/FORMS_FORMAT.md) into a validator.

``compile_form(definition)`` checks the definition itself first and raises
:class:`DefinitionError` listing every problem it finds. The resulting :class:`CompiledForm`
validates one submission's answers:

1. shapes and types through a marshmallow schema built for the form (one field per answer);
2. in dependency order, relevance (answers to hidden fields are dropped and reported) and
   calculations (the server recomputes them and ignores what the phone sent);
3. per field: required (``true`` or an expression), constraint, photo counts;
4. the record ``updates`` (only when there are no errors) and the list of photo answers.

Expressions are evaluated by :mod:`forms.expr`. ``observed_on`` (the date of the observation,
``YYYY-MM-DD``) is provided as a read-only answer and ``today()`` is that same date, so a
submission validates the same way whenever and wherever it is checked.

Pure logic: no Flask, no SQL, no I/O.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from forms import expr

__all__ = [
    "ANSWER_TYPES",
    "CompiledForm",
    "DefinitionError",
    "FIELD_TYPES",
    "RECORD_FIELDS",
    "TARGETS",
    "Validation",
    "compile_form",
]

# --------------------------------------------------------------------------------------------
# Vocabulary

FIELD_TYPES = frozenset(
    {
        "text",
        "integer",
        "decimal",
        "yes_no",
        "select_one",
        "select_many",
        "date",
        "datetime",
        "geopoint",
        "photo",
        "note",
        "calculate",
    }
)
#: Types whose value comes from the phone (note: none; calculate: computed by the server).
ANSWER_TYPES = FIELD_TYPES - {"note", "calculate"}
LIST_TYPES = frozenset({"select_many", "photo"})

#: Record fields per target, from docs/CONTRACTS.md. ``task`` records keep ``status``,
#: ``completed_on``, ``notes`` and task-specific values (any other name).
RECORD_FIELDS: dict[str, frozenset[str] | None] = {
    "toilet": frozenset(
        {
            "toilet_type",
            "sanitary",
            "harmless",
            "construction",
            "in_use",
            "open_to_public",
            "hazards",
            "last_inspected",
            "status",
        }
    ),
    "rubbish": frozenset(
        {
            "rubbish_type",
            "running",
            "last_cleared",
            "overflow",
            "sorted",
            "last_inspected",
            "status",
        }
    ),
    "fire": frozenset(
        {
            "fire_type",
            "equipment_ok",
            "extinguisher_count",
            "next_expiry",
            "access_clear",
            "last_inspected",
            "status",
        }
    ),
    "zone": frozenset({"zone_type", "score", "grade", "failed_items", "last_inspected", "status"}),
    "task": None,
    # Any kind of facility: only what every facility record has (retiring one, for example).
    "facility": frozenset({"status", "last_inspected"}),
}
TARGETS = frozenset(RECORD_FIELDS)

OBSERVED_ON = "observed_on"
RESERVED_NAMES = frozenset({OBSERVED_ON})

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FORM_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

TOP_LEVEL_KEYS = frozenset({"id", "version", "target", "title", "description", "fields", "updates"})
COMMON_FIELD_KEYS = frozenset({"name", "type", "label", "hint", "relevant", "appearance"})
FIELD_KEYS: dict[str, frozenset[str]] = {
    t: COMMON_FIELD_KEYS | {"required", "constraint", "constraint_message", "default", "read_only"}
    for t in ANSWER_TYPES
}
for _t in ("select_one", "select_many"):
    FIELD_KEYS[_t] = FIELD_KEYS[_t] | {"choices"}
FIELD_KEYS["photo"] = FIELD_KEYS["photo"] | {"min_count", "max_count"}
FIELD_KEYS["note"] = COMMON_FIELD_KEYS
FIELD_KEYS["calculate"] = COMMON_FIELD_KEYS | {"calculation", "names_where"}

MAX_TEXT = 5000
MAX_LIST = 100

# --------------------------------------------------------------------------------------------
# Messages (plain words a village cadre understands; English second)


def _msg(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


TYPE_MESSAGES = {
    "text": _msg("请填写文字", "Enter text"),
    "text_long": _msg(f"文字太长，最多 {MAX_TEXT} 字", f"Text too long (at most {MAX_TEXT})"),
    "integer": _msg("请填写整数（如 3）", "Enter a whole number"),
    "decimal": _msg("请填写数字（如 3.5）", "Enter a number"),
    "yes_no": _msg("请选择“是”或“否”", "Choose yes or no"),
    "select_one": _msg("请从选项中选一项", "Choose one of the options"),
    "select_many": _msg("请从选项中勾选", "Choose from the options"),
    "date": _msg("日期格式不对，应为 年-月-日（如 2026-11-20）", "Enter a date as YYYY-MM-DD"),
    "datetime": _msg(
        "时间格式不对，应为 年-月-日T时:分:秒+08:00",
        "Enter a date and time with its UTC offset",
    ),
    "geopoint": _msg("位置格式不对（需要纬度、经度）", "Location needs lat and lon"),
    "photo": _msg("照片信息格式不对，请重新拍照", "Photo answer is malformed; retake the photo"),
    "form": _msg("提交的内容格式不对", "Answers must be an object"),
}


def _required_message(ftype: str, min_count: int) -> dict[str, str]:
    if ftype == "photo":
        n = max(1, min_count)
        return _msg(f"请拍照，至少 {n} 张", f"Take at least {n} photo(s)")
    if ftype in ("select_one", "yes_no"):
        return _msg("必须选择", "Please choose")
    if ftype == "select_many":
        return _msg("至少勾选一项", "Choose at least one")
    return _msg("必须填写", "This is required")


MSG_CHOICE = _msg("不是可选的选项，请重新选择", "Not one of the options")
MSG_UNKNOWN = _msg("表单里没有这一项", "This form has no such question")
MSG_READ_ONLY = _msg("观察日期由系统填写，不能上传", "observed_on is set by the server")
MSG_CONSTRAINT = _msg("填写的内容不符合要求，请检查", "The answer is not allowed")
MSG_DUPLICATE_PHOTO = _msg("同一张照片重复上传了", "The same photo is listed twice")
MSG_EXPRESSION = _msg(
    "表单规则无法计算，请联系管理员", "A rule of this form could not be evaluated"
)


def _count_messages(min_count: int, max_count: int | None) -> tuple[dict, dict]:
    few = _msg(f"请拍照，至少 {min_count} 张", f"Take at least {min_count} photo(s)")
    many = _msg(
        f"照片太多，最多 {max_count} 张", f"At most {max_count} photo(s)"
    )  # max_count None never uses it
    return few, many


def _error(code: str, message: dict[str, str]) -> dict[str, Any]:
    return {"code": code, "message": dict(message)}


# --------------------------------------------------------------------------------------------
# Errors and results


class DefinitionError(ValueError):
    """The form definition itself is wrong. ``problems`` lists every problem found."""

    def __init__(self, form_id: object, problems: list[str]):
        self.form_id = form_id
        self.problems = list(problems)
        text = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"form {form_id!r}: {len(self.problems)} problem(s):\n{text}")


@dataclass(frozen=True)
class Validation:
    answers: dict
    errors: dict[str, list[dict]]
    dropped: list[str]
    updates: dict
    photos: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------------------------
# marshmallow fields: strict JSON shapes; the message of a ValidationError is our error code


class _Strict(fields.Field):
    """Base: None is "no answer"; a wrong type raises ValidationError("type")."""

    def __init__(self, **kwargs):
        super().__init__(allow_none=True, load_default=None, **kwargs)


class TextAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("type")
        if len(value) > MAX_TEXT:
            raise ValidationError("type:text_long")
        return value.strip()


class IntegerAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("type")
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        if not isinstance(value, int) or abs(value) >= 2**53:
            raise ValidationError("type")
        return value


class DecimalAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("type")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("type")
        if isinstance(value, int) and abs(value) >= 2**53:
            raise ValidationError("type")
        return value


class YesNoAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("type")
        return value


class SelectOneAnswer(_Strict):
    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = frozenset(choices)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("type")
        if value == "":
            return None
        if value not in self.choices:
            raise ValidationError("choice")
        return value


class SelectManyAnswer(_Strict):
    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = frozenset(choices)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise ValidationError("type")
        if not all(isinstance(v, str) for v in value):
            raise ValidationError("type")
        if any(v not in self.choices for v in value):
            raise ValidationError("choice")
        return list(dict.fromkeys(value))  # duplicates collapse, order kept


def _check_date(value) -> str:
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise ValidationError("type")
    try:
        datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError("type") from exc
    return value


def _check_datetime(value) -> str:
    if not isinstance(value, str) or len(value) < 19 or len(value) > 40 or value[10] != "T":
        raise ValidationError("type")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError("type") from exc
    if parsed.tzinfo is None:
        raise ValidationError("type")
    return value


def _number(value) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and abs(value) < 2**53
    )


def _check_position(value) -> dict:
    if not isinstance(value, dict) or not {"lat", "lon"} <= value.keys():
        raise ValidationError("type")
    if not value.keys() <= {"lat", "lon", "accuracy"}:
        raise ValidationError("type")
    lat, lon, acc = value["lat"], value["lon"], value.get("accuracy")
    if not (_number(lat) and _number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationError("type")
    if acc is not None and not (_number(acc) and acc >= 0):
        raise ValidationError("type")
    out = {"lat": lat, "lon": lon}
    if "accuracy" in value:
        out["accuracy"] = acc
    return out


class DateAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        return _check_date(value)


class DateTimeAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        return _check_datetime(value)


class GeopointAnswer(_Strict):
    def _deserialize(self, value, attr, data, **kwargs):
        return _check_position(value)


class PhotoAnswer(_Strict):
    """A list of ``{"sha256", "captured_at", "position"}`` (docs/CONTRACTS.md)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise ValidationError("type")
        out, seen = [], set()
        for item in value:
            if not isinstance(item, dict) or "sha256" not in item:
                raise ValidationError("type")
            if not item.keys() <= {"sha256", "captured_at", "position"}:
                raise ValidationError("type")
            sha = item["sha256"]
            if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
                raise ValidationError("type")
            if sha in seen:
                raise ValidationError("duplicate")
            seen.add(sha)
            captured = item.get("captured_at")
            if captured is not None:
                _check_datetime(captured)
            position = item.get("position")
            if position is not None:
                position = _check_position(position)
            out.append({"sha256": sha, "captured_at": captured, "position": position})
        return out


def _marshmallow_field(spec: Mapping[str, Any]) -> fields.Field:
    ftype = spec["type"]
    values = [c["value"] for c in spec.get("choices", ())]
    if ftype == "select_one":
        return SelectOneAnswer(values)
    if ftype == "select_many":
        return SelectManyAnswer(values)
    return {
        "text": TextAnswer,
        "integer": IntegerAnswer,
        "decimal": DecimalAnswer,
        "yes_no": YesNoAnswer,
        "date": DateAnswer,
        "datetime": DateTimeAnswer,
        "geopoint": GeopointAnswer,
        "photo": PhotoAnswer,
    }[ftype]()


# --------------------------------------------------------------------------------------------
# Definition checking


def _is_text(value) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"zh", "en"}
        and all(isinstance(v, str) and v.strip() for v in value.values())
    )


def _expr_refs(source, where: str, problems: list[str]) -> frozenset[str] | None:
    """Parse an expression; return its ${} references, or None (problem recorded)."""
    if not isinstance(source, str) or not source.strip():
        problems.append(f"{where}: expression must be a non-empty string")
        return None
    try:
        expr.parse(source)
        return frozenset(expr.references(source))
    except expr.ExprError as exc:
        problems.append(f"{where}: cannot parse {source!r}: {exc}")
        return None


def _check_definition(definition) -> list[str]:
    problems: list[str] = []
    if not isinstance(definition, dict):
        return ["definition must be a JSON object"]
    for key in sorted(set(definition) - TOP_LEVEL_KEYS):
        problems.append(f"unknown top-level key {key!r}")
    form_id = definition.get("id")
    if not isinstance(form_id, str) or not FORM_ID_RE.match(form_id):
        problems.append("id must be lowercase letters, digits and _ (starting with a letter)")
    version = definition.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append("version must be a positive integer")
    target = definition.get("target")
    if target not in TARGETS:
        problems.append(f"target {target!r} is not one of {sorted(TARGETS)}")
    if not _is_text(definition.get("title")):
        problems.append('title must be {"zh": ..., "en": ...} with both texts')
    if "description" in definition and not _is_text(definition["description"]):
        problems.append('description must be {"zh": ..., "en": ...}')

    specs = definition.get("fields")
    if not isinstance(specs, list) or not specs:
        problems.append("fields must be a non-empty list")
        specs = []

    types: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            problems.append(f"fields[{i}]: must be an object")
            continue
        name = spec.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"fields[{i}]: name {name!r} must be lowercase letters, digits and _")
            continue
        if name in RESERVED_NAMES:
            problems.append(f"field {name!r}: the name is reserved (provided by the server)")
        if name in types:
            problems.append(f"field {name!r}: duplicate name")
            continue
        ftype = spec.get("type")
        if ftype not in FIELD_TYPES:
            problems.append(f"field {name!r}: unknown type {ftype!r}")
            types[name] = "?"
            continue
        types[name] = ftype

    known = set(types) | RESERVED_NAMES
    valueless = {n for n, t in types.items() if t == "note"}
    deps: dict[str, set[str]] = {}

    def refs_ok(source, where: str, *, self_name: str | None = None) -> set[str]:
        refs = _expr_refs(source, where, problems)
        if refs is None:
            return set()
        for ref in sorted(refs - known):
            problems.append(f"{where}: reference to unknown field ${{{ref}}}")
        for ref in sorted(refs & valueless):
            problems.append(f"{where}: ${{{ref}}} is a note and has no value")
        return set(refs & known) - RESERVED_NAMES - {self_name}

    for spec in specs:
        if not isinstance(spec, dict) or types.get(spec.get("name")) in (None, "?"):
            continue
        name, ftype = spec["name"], spec["type"]
        where = f"field {name!r}"
        deps[name] = set()
        for key in sorted(set(spec) - FIELD_KEYS[ftype]):
            problems.append(f"{where}: key {key!r} is not allowed for type {ftype}")
        if not _is_text(spec.get("label")):
            problems.append(f'{where}: label must be {{"zh": ..., "en": ...}} with both texts')
        if "hint" in spec and not _is_text(spec["hint"]):
            problems.append(f'{where}: hint must be {{"zh": ..., "en": ...}}')
        if "appearance" in spec and not isinstance(spec["appearance"], str):
            problems.append(f"{where}: appearance must be a string")
        if "read_only" in spec and not isinstance(spec["read_only"], bool):
            problems.append(f"{where}: read_only must be true or false")
        if "relevant" in spec:
            deps[name] |= refs_ok(spec["relevant"], f"{where} relevant", self_name=None)
            if name in _expr_refs_quiet(spec["relevant"]):
                problems.append(f"{where} relevant: a field's relevance cannot depend on itself")
        if "required" in spec:
            req = spec["required"]
            if not isinstance(req, bool):
                refs_ok(req, f"{where} required", self_name=name)
        if "constraint" in spec:
            refs_ok(spec["constraint"], f"{where} constraint", self_name=name)
        if "constraint_message" in spec:
            if not _is_text(spec["constraint_message"]):
                problems.append(f'{where}: constraint_message must be {{"zh": ..., "en": ...}}')
            if "constraint" not in spec:
                problems.append(f"{where}: constraint_message without a constraint")
        if ftype in ("select_one", "select_many"):
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                problems.append(f"{where}: a {ftype} needs a non-empty list of choices")
            else:
                seen: set[str] = set()
                for j, choice in enumerate(choices):
                    if not isinstance(choice, dict) or set(choice) != {"value", "label"}:
                        problems.append(f"{where}: choices[{j}] must be {{value, label}}")
                        continue
                    value = choice["value"]
                    if not isinstance(value, str) or not NAME_RE.match(value):
                        problems.append(
                            f"{where}: choice value {value!r} must be lowercase letters, "
                            "digits and _"
                        )
                    elif value in seen:
                        problems.append(f"{where}: duplicate choice value {value!r}")
                    else:
                        seen.add(value)
                    if not _is_text(choice["label"]):
                        problems.append(f"{where}: choice {value!r} needs a zh and en label")
        if ftype == "photo":
            lo, hi = spec.get("min_count", 0), spec.get("max_count")
            for key, val in (("min_count", lo), ("max_count", hi)):
                if val is not None and (isinstance(val, bool) or not isinstance(val, int)):
                    problems.append(f"{where}: {key} must be an integer")
            if isinstance(lo, int) and not isinstance(lo, bool):
                if lo < 0:
                    problems.append(f"{where}: min_count must be 0 or more")
                if isinstance(hi, int) and not isinstance(hi, bool) and (hi < 1 or hi < lo):
                    problems.append(f"{where}: max_count must be at least 1 and min_count")
        if ftype == "calculate":
            has_calc, has_names = "calculation" in spec, "names_where" in spec
            if has_calc == has_names:
                problems.append(
                    f"{where}: a calculate needs exactly one of calculation, names_where"
                )
            if has_calc:
                deps[name] |= refs_ok(spec["calculation"], f"{where} calculation")
                if name in _expr_refs_quiet(spec["calculation"]):
                    problems.append(f"{where} calculation: refers to itself")
            if has_names:
                deps[name] |= _check_names_where(spec["names_where"], where, types, problems)
        if "default" in spec:
            try:
                value = _marshmallow_field(spec).deserialize(spec["default"])
            except ValidationError:
                value = None
            if value is None:
                problems.append(f"{where}: default {spec['default']!r} is not a valid {ftype}")

    if not problems:
        try:
            _order(deps)
        except ValueError as exc:
            problems.append(str(exc))

    updates = definition.get("updates")
    if not isinstance(updates, dict):
        problems.append("updates must be an object: record field -> expression")
        updates = {}
    allowed = RECORD_FIELDS.get(target) if target in TARGETS else None
    for rec_field, source in updates.items():
        if not NAME_RE.match(rec_field):
            problems.append(f"updates {rec_field!r}: not a valid record field name")
        elif allowed is not None and rec_field not in allowed:
            problems.append(
                f"updates {rec_field!r}: not a record field of {target} (docs/CONTRACTS.md)"
            )
        refs_ok(source, f"updates {rec_field!r}")
    return problems


def _expr_refs_quiet(source) -> frozenset[str]:
    try:
        return frozenset(expr.references(source))
    except Exception:  # noqa: BLE001 - already reported by _expr_refs
        return frozenset()


def _check_names_where(spec, where: str, types: dict[str, str], problems: list[str]) -> set[str]:
    if not isinstance(spec, dict) or set(spec) != {"fields", "equals"}:
        problems.append(f'{where}: names_where must be {{"fields": [...], "equals": "value"}}')
        return set()
    names, equals = spec["fields"], spec["equals"]
    if not isinstance(equals, str) or not equals:
        problems.append(f"{where}: names_where.equals must be a choice value")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append(f"{where}: names_where.fields must be a non-empty list of field names")
        return set()
    for n in names:
        if n not in types:
            problems.append(f"{where}: names_where refers to unknown field {n!r}")
        elif types[n] not in ("select_one", "select_many", "text"):
            problems.append(f"{where}: names_where field {n!r} must be a select or text")
    return {n for n in names if n in types}


def _order(deps: Mapping[str, set[str]]) -> list[str]:
    """Fields in definition order, moved after whatever their relevance/calculation reads."""
    order: list[str] = []
    state: dict[str, int] = {}
    position = {name: i for i, name in enumerate(deps)}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise ValueError("circular relevance/calculation: " + " -> ".join(cycle))
        state[name] = 1
        # Sets have no stable order across runs: visit dependencies in definition order.
        for dep in sorted(deps.get(name, ()), key=lambda d: position.get(d, len(position))):
            visit(dep, path + [name])
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name, [])
    return order


# --------------------------------------------------------------------------------------------
# The compiled form


def _empty(value) -> bool:
    return value is None or value == "" or value == []


def _normalize_number(value):
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class CompiledForm:
    """A checked form definition that validates answers. Build with :func:`compile_form`."""

    def __init__(self, definition: dict):
        self.definition = definition
        self.id: str = definition["id"]
        self.version: int = definition["version"]
        self.target: str = definition["target"]
        self.fields: dict[str, dict] = {f["name"]: f for f in definition["fields"]}
        self.updates: dict[str, str] = dict(definition.get("updates", {}))
        deps: dict[str, set[str]] = {}
        for name, spec in self.fields.items():
            refs: set[str] = set()
            for key in ("relevant", "calculation"):
                if key in spec:
                    refs |= set(expr.references(spec[key]))
            if "names_where" in spec:
                refs |= set(spec["names_where"]["fields"])
            deps[name] = (refs - RESERVED_NAMES) & set(self.fields)
        self.order: list[str] = _order(deps)
        answer_fields = {
            name: _marshmallow_field(spec)
            for name, spec in self.fields.items()
            if spec["type"] in ANSWER_TYPES
        }
        self.schema: Schema = Schema.from_dict(answer_fields, name=f"Form_{self.id}")(
            unknown=EXCLUDE
        )

    def __repr__(self) -> str:
        return f"<CompiledForm {self.id} v{self.version} target={self.target}>"

    # -- evaluation helpers ------------------------------------------------------------------

    def _eval(self, source: str, env: Mapping[str, Any], today, *, current=None):
        """Evaluate; returns (value, failed)."""
        try:
            return expr.evaluate(source, env, current=current, today=today), False
        except Exception:  # noqa: BLE001 - a rule that cannot run must not crash a sync
            return None, True

    # -- validation --------------------------------------------------------------------------

    def validate(self, answers: dict, *, observed_on: datetime.date) -> Validation:
        errors: dict[str, list[dict]] = {}

        def add(name: str, code: str, message: dict) -> None:
            errors.setdefault(name, []).append(_error(code, message))

        if isinstance(observed_on, datetime.datetime):
            observed_on = observed_on.date()
        if not isinstance(answers, dict):
            add("_form", "type", TYPE_MESSAGES["form"])
            return Validation(answers={}, errors=errors, dropped=[], updates={}, photos=[])

        # 1. keys
        raw: dict[str, Any] = {}
        for key, value in answers.items():
            spec = self.fields.get(key)
            if key == OBSERVED_ON:
                add(key, "read_only", MSG_READ_ONLY)
            elif spec is None:
                add(str(key), "unknown_field", MSG_UNKNOWN)
            elif spec["type"] in ANSWER_TYPES:
                raw[key] = value
            # note: nothing to store; calculate: recomputed below, the phone's value is ignored

        # 2. types and shapes (marshmallow)
        try:
            loaded = self.schema.load(raw)
            type_errors: dict = {}
        except ValidationError as exc:
            loaded = exc.valid_data or {}
            type_errors = exc.messages if isinstance(exc.messages, dict) else {}
        bad_type: set[str] = set()
        for name, messages in type_errors.items():
            if name not in self.fields:
                continue
            bad_type.add(name)
            code = messages[0] if isinstance(messages, list) and messages else "type"
            ftype = self.fields[name]["type"]
            if code == "choice":
                add(name, "choice", MSG_CHOICE)
            elif code == "duplicate":
                add(name, "duplicate", MSG_DUPLICATE_PHOTO)
            elif code == "type:text_long":
                add(name, "type", TYPE_MESSAGES["text_long"])
            else:
                add(name, "type", TYPE_MESSAGES[ftype])

        # 3. relevance and calculations, in dependency order
        iso_day = observed_on.isoformat()
        env: dict[str, Any] = {OBSERVED_ON: iso_day}
        relevant: dict[str, bool] = {}
        dropped: list[str] = []
        for name in self.order:
            spec = self.fields[name]
            ftype = spec["type"]
            shown = True
            if "relevant" in spec:
                value, failed = self._eval(spec["relevant"], env, observed_on)
                if failed:
                    add(name, "expression", MSG_EXPRESSION)
                shown = failed or expr.truthy(value)
            relevant[name] = shown
            if ftype == "calculate":
                if shown:
                    value = self._calculate(spec, env, observed_on, add)
                    if not _empty(value) or isinstance(value, list):
                        env[name] = value
                continue
            if ftype == "note":
                continue
            value = loaded.get(name)
            if not shown:
                if name in answers and not _empty(answers[name]):
                    dropped.append(name)
                errors.pop(name, None)  # a hidden answer is dropped, not judged
                continue
            if name in bad_type:
                continue
            if ftype in LIST_TYPES and value is None:
                value = []
            if value is not None and (value != "" or ftype in LIST_TYPES):
                env[name] = value

        # 4. required, constraint, counts (values are settled now)
        for name in self.order:
            spec = self.fields[name]
            ftype = spec["type"]
            if ftype not in ANSWER_TYPES or not relevant[name] or name in bad_type:
                continue
            value = env.get(name)
            required = spec.get("required", False)
            if not isinstance(required, bool):
                result, failed = self._eval(required, env, observed_on, current=value)
                if failed:
                    add(name, "expression", MSG_EXPRESSION)
                required = (not failed) and expr.truthy(result)
            if _empty(value):
                if required:
                    add(name, "required", _required_message(ftype, spec.get("min_count", 0)))
                continue
            if "constraint" in spec:
                result, failed = self._eval(spec["constraint"], env, observed_on, current=value)
                if failed:
                    add(name, "expression", MSG_EXPRESSION)
                elif not expr.truthy(result):
                    add(name, "constraint", spec.get("constraint_message", MSG_CONSTRAINT))
            if ftype == "photo":
                lo, hi = spec.get("min_count", 0), spec.get("max_count")
                few, many = _count_messages(lo, hi)
                if len(value) < lo:
                    add(name, "count", few)
                elif hi is not None and len(value) > hi:
                    add(name, "count", many)

        cleaned = {
            name: env[name]
            for name in self.fields
            if name in env and self.fields[name]["type"] != "note"
        }
        photos = [
            {"field": name, **photo}
            for name in self.fields
            if self.fields[name]["type"] == "photo"
            for photo in cleaned.get(name, [])
        ]
        updates = {} if errors else self._updates(env, observed_on, errors)
        return Validation(
            answers=cleaned,
            errors=errors,
            dropped=dropped,
            updates=updates if not errors else {},
            photos=photos,
        )

    def _calculate(self, spec, env, today, add):
        if "names_where" in spec:
            rule = spec["names_where"]
            out = []
            for name in rule["fields"]:
                value = env.get(name)
                if value == rule["equals"] or (isinstance(value, list) and rule["equals"] in value):
                    out.append(name)
            return out
        value, failed = self._eval(spec["calculation"], env, today)
        if failed:
            add(spec["name"], "expression", MSG_EXPRESSION)
            return None
        return _normalize_number(value)

    def _updates(self, env, today, errors) -> dict:
        out: dict[str, Any] = {}
        for rec_field, source in self.updates.items():
            name = _plain_reference(source)
            if name is not None:
                value = env.get(name)  # the stored value, type kept (lists, booleans, numbers)
            else:
                value, failed = self._eval(source, env, today)
                if failed:
                    errors.setdefault(f"updates.{rec_field}", []).append(
                        _error("expression", MSG_EXPRESSION)
                    )
                    continue
                value = _normalize_number(value)
            if not _empty(value) or isinstance(value, list):
                out[rec_field] = value
        return out


_PLAIN_REF = re.compile(r"^\s*\$\{([A-Za-z_][A-Za-z0-9_]*)\}\s*$")


def _plain_reference(source: str) -> str | None:
    match = _PLAIN_REF.match(source)
    return match.group(1) if match else None


def compile_form(definition: dict) -> CompiledForm:
    """Check a definition and compile it; raises DefinitionError listing every problem."""
    problems = _check_definition(definition)
    if problems:
        form_id = definition.get("id") if isinstance(definition, dict) else None
        raise DefinitionError(form_id, problems)
    return CompiledForm(definition)
