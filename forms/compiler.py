"""Compile a form definition (JSON data, see docs/FORMS_FORMAT.md) into a validator.

``compile_form(definition)`` checks the definition itself first and raises
:class:`DefinitionError` listing every problem it finds. The resulting :class:`CompiledForm`
validates one submission's answers:

1. shapes and types through a marshmallow schema built for the form (one field per answer);
2. in dependency order, relevance (answers to hidden fields are dropped and reported) and
   calculations (the server recomputes them and ignores what the phone sent);
3. per field: required (``true`` or an expression), constraint, photo counts;
4. the record ``updates`` (only when there are no errors) and the list of photo answers.

A ``repeat`` field holds a list of instances, each an object of its inner fields' answers; every
instance goes through steps 1-3 with its own evaluation context (its own answers, the instance
number for ``position(..)``), and errors inside one are keyed ``rooms[2].field`` (1-based).
Outside the repeat its values are node-sets (``expr.Nodeset``) for count(), sum() and the like.

Expressions are evaluated by :mod:`forms.expr`. ``observed_on`` (the date of the observation,
``YYYY-MM-DD``) is provided as a read-only answer and ``today()`` is that same date, so a
submission validates the same way whenever and wherever it is checked.

Pure logic: no Flask, no SQL, no I/O.
"""

from __future__ import annotations

import dataclasses
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
    "MAX_REPEAT_INSTANCES",
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
        "repeat",
    }
)
REPEAT = "repeat"
#: Types whose one value comes from the phone (note: none; calculate: computed by the server;
#: repeat: a list of instances, each checked field by field).
ANSWER_TYPES = FIELD_TYPES - {"note", "calculate", REPEAT}
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

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # used with fullmatch ($ would allow a "\n")
#: A field name: as XLSForm writes them (Name_of_village, Q2, _1_x), but no . or - (a repeat's
#: answers are addressed as rooms[2].field) and at most 64.
FIELD_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: A choice value: letters of any script, digits, _ . - (ODK forms use 1, 2, Yes, 卫生 …); no
#: spaces (select-many answers are space-separated in expressions), no quotes or = + @.
CHOICE_VALUE_RE = re.compile(r"\w[\w.-]{0,63}")
#: A date field's `default` may be this: the phone fills in the day when the field first shows
#: (XLSForm's dynamic default today()); the server never fills defaults in.
TODAY_DEFAULT = "today()"
FORM_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

TOP_LEVEL_KEYS = frozenset({"id", "version", "target", "title", "description", "fields", "updates"})
COMMON_FIELD_KEYS = frozenset({"name", "type", "label", "hint", "relevant", "appearance"})
FIELD_KEYS: dict[str, frozenset[str]] = {
    t: COMMON_FIELD_KEYS
    | {"required", "required_message", "constraint", "constraint_message", "default", "read_only"}
    for t in ANSWER_TYPES
}
SELECT_TYPES = ("select_one", "select_many")
for _t in SELECT_TYPES:
    FIELD_KEYS[_t] = FIELD_KEYS[_t] | {"choices", "choice_filter"}
FIELD_KEYS["photo"] = FIELD_KEYS["photo"] | {"min_count", "max_count"}
FIELD_KEYS["note"] = COMMON_FIELD_KEYS
FIELD_KEYS["calculate"] = COMMON_FIELD_KEYS | {"calculation", "names_where"}
FIELD_KEYS[REPEAT] = COMMON_FIELD_KEYS | {
    "required",
    "required_message",
    "min_count",
    "max_count",
    "repeat_count",
    "fields",
}

MAX_TEXT = 5000
MAX_LIST = 100
#: At most this many instances of one repeat, whatever its max_count says.
MAX_REPEAT_INSTANCES = 100
#: The functions through which ``updates`` may read a repeat or its fields (node-sets).
NODESET_FUNCTIONS = frozenset(
    {"count", "count-non-empty", "sum", "max", "min", "join", "indexed-repeat"}
)
PROPERTY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

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
    if ftype == REPEAT:
        return _msg("请至少添加一项", "Add at least one")
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


def _repeat_count_messages(min_count: int, max_count: int) -> tuple[dict, dict]:
    few = _msg(f"至少要添加 {min_count} 项", f"Add at least {min_count}")
    many = _msg(f"最多只能添加 {max_count} 项", f"At most {max_count}")
    return few, many


def _repeat_count_message(expected: int, got: int) -> dict[str, str]:
    return _msg(f"应添加 {expected} 项，现在是 {got} 项", f"Needs exactly {expected}, has {got}")


MSG_REPEAT_TYPE = _msg("重复组的内容格式不对", "A repeat's answer must be a list of objects")


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


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


def _nodes_with_parent(node, parent=None):
    """Every node of a syntax tree with its parent (generic over the node dataclasses)."""
    yield node, parent
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if dataclasses.is_dataclass(child):
                yield from _nodes_with_parent(child, node)


def _reads_outside_nodeset_functions(source: str, names: set[str]) -> list[str]:
    """Names among ``names`` that ``source`` reads other than as a node-set function argument."""
    bad = []
    for node, parent in _nodes_with_parent(expr.parse(source)):
        if isinstance(node, expr.Ref) and node.name in names:
            direct = (
                isinstance(parent, expr.Call)
                and parent.name in NODESET_FUNCTIONS
                and any(arg is node for arg in parent.args)
            )
            if not direct and node.name not in bad:
                bad.append(node.name)
    return bad


def _collect_fields(specs, problems: list[str]):
    """Names and types across the whole form (names are unique form-wide, repeats included).

    Returns (types, scope, repeat_fields): name -> type ("?" when unknown), name -> the repeat
    that holds it (None at the top level), repeat -> its list of valid inner specs.
    """
    types: dict[str, str] = {}
    scope: dict[str, str | None] = {}
    repeat_fields: dict[str, list[dict]] = {}

    def one(i: int, spec, repeat: str | None) -> str | None:
        where = f"fields[{i}]" if repeat is None else f"field {repeat!r} fields[{i}]"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be an object")
            return None
        name = spec.get("name")
        if not isinstance(name, str) or not FIELD_NAME_RE.fullmatch(name):
            problems.append(f"{where}: name {name!r} must be letters, digits and _ (at most 64)")
            return None
        if name in RESERVED_NAMES:
            problems.append(f"field {name!r}: the name is reserved (provided by the server)")
        if name in types:
            problems.append(f"field {name!r}: duplicate name (names are unique in the whole form)")
            return None
        ftype = spec.get("type")
        scope[name] = repeat
        if ftype == REPEAT and repeat is not None:
            problems.append(f"field {name!r}: a repeat inside a repeat (one level only)")
            types[name] = "?"
            return None
        if ftype not in FIELD_TYPES:
            problems.append(f"field {name!r}: unknown type {ftype!r}")
            types[name] = "?"
            return None
        types[name] = ftype
        return name

    for i, spec in enumerate(specs):
        name = one(i, spec, None)
        if name is None or types[name] != REPEAT:
            continue
        inner = spec.get("fields")
        repeat_fields[name] = []
        if not isinstance(inner, list) or not inner:
            problems.append(f"field {name!r}: a repeat needs a non-empty list of fields")
            continue
        for j, inner_spec in enumerate(inner):
            if one(j, inner_spec, name) is not None:
                repeat_fields[name].append(inner_spec)
    return types, scope, repeat_fields


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

    types, scope, repeat_fields = _collect_fields(specs, problems)
    known = set(types) | RESERVED_NAMES
    valueless = {n for n, t in types.items() if t == "note"}
    selects = {n for n, t in types.items() if t in ("select_one", "select_many")}
    in_repeats = {n for n, r in scope.items() if r is not None} | set(repeat_fields)

    def top_node(name: str) -> str:
        """The top-level field an ordering edge to ``name`` points at (its repeat if inside one)."""
        return scope.get(name) or name

    def refs_ok(
        source,
        where: str,
        *,
        self_name: str | None = None,
        inside: str | None = None,
        choice_keys: set[str] | None = None,
    ) -> set[str]:
        """Check one expression of a field in scope ``inside`` (a repeat, or None)."""
        refs = _expr_refs(source, where, problems)
        if refs is None:
            return set()
        for ref in sorted(refs - known):
            problems.append(f"{where}: reference to unknown field ${{{ref}}}")
        for ref in sorted(refs & valueless):
            problems.append(f"{where}: ${{{ref}}} is a note and has no value")
        bare = expr.bare_names(source)
        if choice_keys is None:
            for bare_name in sorted(bare):
                problems.append(
                    f"{where}: bare name {bare_name!r}: only a choice_filter reads choice "
                    f"properties (write ${{{bare_name}}} for a field)"
                )
        else:
            for bare_name in sorted(bare - choice_keys):
                problems.append(f"{where}: {bare_name!r} is not a property of the choices")
        if inside is None and expr.uses_position(source):
            problems.append(f"{where}: position(..) only inside a repeat")
        for named in sorted(expr.choice_name_fields(source) - selects):
            problems.append(f"{where}: jr:choice-name() names {named!r}, not a select field")
        return set(refs & known) - RESERVED_NAMES - {self_name}

    # ordering edges: top-level node -> top-level nodes; repeat -> inner name -> inner names
    deps: dict[str, set[str]] = {}
    inner_deps: dict[str, dict[str, set[str]]] = {r: {} for r in repeat_fields}

    def add_deps(name: str, inside: str | None, refs: set[str]) -> None:
        if inside is None:
            deps[name] |= {top_node(r) for r in refs}
            return
        inner_deps[inside][name] |= {r for r in refs if scope.get(r) == inside}
        deps[inside] |= {top_node(r) for r in refs if scope.get(r) != inside and r != inside}

    def check_field(spec: dict, inside: str | None) -> None:
        name, ftype = spec["name"], spec["type"]
        where = f"field {name!r}"
        if inside is None:
            deps[name] = set()
        else:
            inner_deps[inside][name] = set()
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
        own = {name} | ({n for n, r in scope.items() if r == name} if ftype == REPEAT else set())
        if "relevant" in spec:
            refs = refs_ok(spec["relevant"], f"{where} relevant", inside=inside)
            if own & _expr_refs_quiet(spec["relevant"]):
                problems.append(f"{where} relevant: a field's relevance cannot depend on itself")
            add_deps(name, inside, refs - own)
        if "required" in spec:
            req = spec["required"]
            if not isinstance(req, bool):
                refs_ok(req, f"{where} required", self_name=name, inside=inside)
        if "required_message" in spec:
            if not _is_text(spec["required_message"]):
                problems.append(f'{where}: required_message must be {{"zh": ..., "en": ...}}')
            if "required" not in spec:
                problems.append(f"{where}: required_message without required")
        if "constraint" in spec:
            refs_ok(spec["constraint"], f"{where} constraint", self_name=name, inside=inside)
        if "constraint_message" in spec:
            if not _is_text(spec["constraint_message"]):
                problems.append(f'{where}: constraint_message must be {{"zh": ..., "en": ...}}')
            if "constraint" not in spec:
                problems.append(f"{where}: constraint_message without a constraint")
        if ftype in SELECT_TYPES:
            check_choices(spec, where, inside, add_deps)
        if ftype == "photo" or ftype == REPEAT:
            lo, hi = spec.get("min_count", 0), spec.get("max_count")
            for key, val in (("min_count", lo), ("max_count", hi)):
                if val is not None and not _int(val):
                    problems.append(f"{where}: {key} must be an integer")
            if _int(lo):
                if lo < 0:
                    problems.append(f"{where}: min_count must be 0 or more")
                if ftype == REPEAT and lo > MAX_REPEAT_INSTANCES:
                    problems.append(
                        f"{where}: min_count above the limit of {MAX_REPEAT_INSTANCES} instances"
                    )
                if _int(hi) and (hi < 1 or hi < lo):
                    problems.append(f"{where}: max_count must be at least 1 and min_count")
        if ftype == REPEAT:
            if "repeat_count" in spec:
                refs = refs_ok(spec["repeat_count"], f"{where} repeat_count")
                if refs & own:
                    problems.append(f"{where} repeat_count: cannot read its own repeat")
                deps[name] |= {top_node(r) for r in refs - own}
            for inner_spec in repeat_fields.get(name, ()):
                if types.get(inner_spec["name"]) not in (None, "?"):
                    check_field(inner_spec, name)
        if ftype == "calculate":
            has_calc, has_names = "calculation" in spec, "names_where" in spec
            if has_calc == has_names:
                problems.append(
                    f"{where}: a calculate needs exactly one of calculation, names_where"
                )
            if has_calc:
                refs = refs_ok(spec["calculation"], f"{where} calculation", inside=inside)
                add_deps(name, inside, refs)
                if name in _expr_refs_quiet(spec["calculation"]):
                    problems.append(f"{where} calculation: refers to itself")
            if has_names:
                same_scope = {n: t for n, t in types.items() if scope.get(n) == inside}
                add_deps(
                    name,
                    inside,
                    _check_names_where(spec["names_where"], where, same_scope, problems),
                )
        if "default" in spec and not (ftype == "date" and spec["default"] == TODAY_DEFAULT):
            try:
                value = _marshmallow_field(spec).deserialize(spec["default"])
            except (ValidationError, KeyError, TypeError):
                value = None
            if value is None:
                problems.append(f"{where}: default {spec['default']!r} is not a valid {ftype}")

    def check_choices(spec: dict, where: str, inside: str | None, add_deps) -> None:
        ftype = spec["type"]
        choices = spec.get("choices")
        keys: set[str] = {"name"}
        if not isinstance(choices, list) or not choices:
            problems.append(f"{where}: a {ftype} needs a non-empty list of choices")
        else:
            seen: set[str] = set()
            for j, choice in enumerate(choices):
                if (
                    not isinstance(choice, dict)
                    or not {"value", "label"} <= set(choice)
                    or not set(choice) <= {"value", "label", "properties"}
                ):
                    problems.append(f"{where}: choices[{j}] must be {{value, label, properties?}}")
                    continue
                value = choice["value"]
                if not isinstance(value, str) or not CHOICE_VALUE_RE.fullmatch(value):
                    problems.append(
                        f"{where}: choice value {value!r} must be letters, digits, _ . or -"
                        " (at most 64, no spaces)"
                    )
                elif value in seen:
                    problems.append(f"{where}: duplicate choice value {value!r}")
                else:
                    seen.add(value)
                if not _is_text(choice["label"]):
                    problems.append(f"{where}: choice {value!r} needs a zh and en label")
                props = choice.get("properties", {})
                if not isinstance(props, dict) or not all(
                    isinstance(k, str)
                    and PROPERTY_RE.match(k)
                    and k != "name"
                    and isinstance(v, str)
                    for k, v in props.items()
                ):
                    problems.append(
                        f"{where}: choice {value!r} properties must map names (letters, digits, "
                        "_; not 'name') to text"
                    )
                else:
                    keys |= set(props)
        if "choice_filter" in spec:
            refs = refs_ok(
                spec["choice_filter"], f"{where} choice_filter", inside=inside, choice_keys=keys
            )
            if spec["name"] in _expr_refs_quiet(spec["choice_filter"]):
                problems.append(f"{where} choice_filter: refers to itself")
            add_deps(spec["name"], inside, refs - {spec["name"]})

    for spec in specs:
        if isinstance(spec, dict) and types.get(spec.get("name")) not in (None, "?"):
            if scope.get(spec["name"]) is None:
                check_field(spec, None)

    if not problems:
        try:
            _order(deps)
            for inner in inner_deps.values():
                _order(inner)
        except ValueError as exc:
            problems.append(str(exc))

    updates = definition.get("updates")
    if not isinstance(updates, dict):
        problems.append("updates must be an object: record field -> expression")
        updates = {}
    allowed = RECORD_FIELDS.get(target) if target in TARGETS else None
    for rec_field, source in updates.items():
        if not NAME_RE.fullmatch(rec_field):
            problems.append(f"updates {rec_field!r}: not a valid record field name")
        elif allowed is not None and rec_field not in allowed:
            problems.append(
                f"updates {rec_field!r}: not a record field of {target} (docs/CONTRACTS.md)"
            )
        before = len(problems)
        refs = refs_ok(source, f"updates {rec_field!r}")
        if len(problems) == before and refs & in_repeats:
            for name in _reads_outside_nodeset_functions(source, in_repeats):
                problems.append(
                    f"updates {rec_field!r}: reads ${{{name}}} of a repeat; use a function over "
                    f"its instances ({', '.join(sorted(NODESET_FUNCTIONS))})"
                )
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
            problems.append(f"{where}: names_where refers to unknown field {n!r} (same level)")
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
            if dep in position:
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


def _evaluate(source: str, env: Mapping[str, Any], run: _Run, *, current=None, position=None,
              choice=None):  # fmt: skip
    """Evaluate; returns (value, failed). A rule that cannot run must not crash a sync."""
    try:
        value = expr.evaluate(
            source,
            env,
            current=current,
            today=run.today,
            now=run.now,
            position=position,
            choice=choice,
            labels=run.labels,
        )
        return value, False
    except Exception:  # noqa: BLE001
        return None, True


_NUMERIC_TEXT = re.compile(r"[ \t\r\n]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*")


def _repeat_count(value) -> int | None:
    """The number of instances a repeat_count result asks for (a number or numeric text, as
    XPath's number() reads it, truncated into 0..100); None when it is not a number."""
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(0, min(MAX_REPEAT_INSTANCES, int(value)))


class _Level:
    """The fields of the form's top level or of one repeat: specs, evaluation order, schema."""

    def __init__(self, specs: list[dict], name: str):
        self.fields: dict[str, dict] = {f["name"]: f for f in specs}
        self.schema: Schema = Schema.from_dict(
            {n: _marshmallow_field(s) for n, s in self.fields.items() if s["type"] in ANSWER_TYPES},
            name=name,
        )(unknown=EXCLUDE)
        self.order: list[str] = []  # set by CompiledForm once every level is known


@dataclass
class _Run:
    """The state of one validation."""

    today: datetime.date
    now: datetime.datetime | str | None = None
    errors: dict[str, list[dict]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    labels: Mapping[str, Mapping[str, str]] | None = None  # for jr:choice-name()

    def add(self, key: str, code: str, message: dict) -> None:
        self.errors.setdefault(key, []).append(_error(code, message))

    def drop_errors(self, key: str) -> None:
        self.errors.pop(key, None)


@dataclass
class _Settled:
    """One level's settled values: the answers (env), what is shown, what had a bad type."""

    env: dict[str, Any]
    relevant: dict[str, bool]
    bad: set[str]
    position: int | None
    prefix: str = ""
    repeats: dict[str, _RepeatResult] = field(default_factory=dict)


@dataclass
class _RepeatResult:
    count: int | None  # what repeat_count asked for (None: min/max_count apply)
    instances: list[_Settled]  # empty when the answer had a bad shape
    cleaned: list[dict]
    ok: bool  # False: a bad shape (type/count error at the repeat's key), nothing settled


class CompiledForm:
    """A checked form definition that validates answers. Build with :func:`compile_form`."""

    def __init__(self, definition: dict):
        self.definition = definition
        self.id: str = definition["id"]
        self.version: int = definition["version"]
        self.target: str = definition["target"]
        self.fields: dict[str, dict] = {f["name"]: f for f in definition["fields"]}
        self.updates: dict[str, str] = dict(definition.get("updates", {}))
        self.top = _Level(definition["fields"], f"Form_{self.id}")
        self.levels: dict[str, _Level] = {
            name: _Level(spec["fields"], f"Form_{self.id}_{name}")
            for name, spec in self.fields.items()
            if spec["type"] == REPEAT
        }
        #: select field name -> choice value -> Chinese label, for jr:choice-name()
        self.labels: dict[str, dict[str, str]] = {
            spec["name"]: {c["value"]: c["label"]["zh"] for c in spec["choices"]}
            for level in (self.top, *self.levels.values())
            for spec in level.fields.values()
            if spec["type"] in ("select_one", "select_many")
        }
        #: name -> the repeat that holds it (inner fields only)
        self.inner_of: dict[str, str] = {
            inner: rep for rep, level in self.levels.items() for inner in level.fields
        }
        top_deps: dict[str, set[str]] = {name: set() for name in self.fields}
        for rep, level in self.levels.items():
            inner_deps: dict[str, set[str]] = {}
            for name, spec in level.fields.items():
                refs = _ordering_refs(spec) - {rep}
                inner_deps[name] = {r for r in refs if self.inner_of.get(r) == rep}
                top_deps[rep] |= {self.inner_of.get(r, r) for r in refs} - {rep}
            level.order = _order(inner_deps)
        for name, spec in self.fields.items():
            refs = _ordering_refs(spec)
            if spec["type"] == REPEAT and "repeat_count" in spec:
                refs |= set(expr.references(spec["repeat_count"]))
            top_deps[name] |= {self.inner_of.get(r, r) for r in refs} - {name}
        for name in top_deps:
            top_deps[name] &= set(self.fields)
        self.order: list[str] = _order(top_deps)
        self.top.order = self.order
        self.schema = self.top.schema

    def __repr__(self) -> str:
        return f"<CompiledForm {self.id} v{self.version} target={self.target}>"

    # -- validation --------------------------------------------------------------------------

    def validate(
        self,
        answers: dict,
        *,
        observed_on: datetime.date,
        observed_at: datetime.datetime | str | None = None,
    ) -> Validation:
        """Check one submission's answers. ``observed_at`` (an aware datetime or ISO text with
        its offset) is what ``now()`` gives; without it a rule calling now() is an
        ``expression`` error."""
        if isinstance(observed_on, datetime.datetime):
            observed_on = observed_on.date()
        run = _Run(observed_on, observed_at, labels=self.labels)
        if not isinstance(answers, dict):
            run.add("_form", "type", TYPE_MESSAGES["form"])
            return Validation(answers={}, errors=run.errors, dropped=[], updates={}, photos=[])

        env: dict[str, Any] = {OBSERVED_ON: observed_on.isoformat()}
        top = self._settle(self.top, answers, env, run, position=None, prefix="")
        self._check(self.top, top, run)

        cleaned: dict[str, Any] = {}
        photos: list[dict] = []
        for name, spec in self.fields.items():
            if spec["type"] == REPEAT:
                result = top.repeats.get(name)
                if result is None or not result.ok or not top.relevant.get(name):
                    continue
                cleaned[name] = result.cleaned
                level = self.levels[name]
                for i, instance in enumerate(result.cleaned, start=1):
                    for inner, inner_spec in level.fields.items():
                        if inner_spec["type"] == "photo":
                            photos += [
                                {"field": f"{name}[{i}].{inner}", **p}
                                for p in instance.get(inner, [])
                            ]
            elif name in top.env and spec["type"] != "note":
                cleaned[name] = top.env[name]
                if spec["type"] == "photo":
                    photos += [{"field": name, **p} for p in cleaned[name]]
        updates = {} if run.errors else self._updates(top.env, run, run.errors)
        return Validation(
            answers=cleaned,
            errors=run.errors,
            dropped=run.dropped,
            updates=updates if not run.errors else {},
            photos=photos,
        )

    def _settle(
        self,
        level: _Level,
        answers: dict,
        env: dict[str, Any],
        run: _Run,
        *,
        position: int | None,
        prefix: str,
    ) -> _Settled:
        """Steps 1-3 for one level: keys, shapes, then relevance and calculations in order.

        ``env`` already holds what this level may read from outside it; its own values are
        added as they settle.
        """
        # 1. keys
        raw: dict[str, Any] = {}
        for key, value in answers.items():
            spec = level.fields.get(key)
            if key == OBSERVED_ON:
                run.add(prefix + key, "read_only", MSG_READ_ONLY)
            elif spec is None:
                run.add(prefix + str(key), "unknown_field", MSG_UNKNOWN)
            elif spec["type"] in ANSWER_TYPES:
                raw[key] = value
            # note: nothing to store; calculate: recomputed below, the phone's value is ignored;
            # repeat: its instances are read when it settles

        # 2. types and shapes (marshmallow)
        try:
            loaded = level.schema.load(raw)
            type_errors: dict = {}
        except ValidationError as exc:
            loaded = exc.valid_data or {}
            type_errors = exc.messages if isinstance(exc.messages, dict) else {}
        bad: set[str] = set()
        for name, messages in type_errors.items():
            if name not in level.fields:
                continue
            bad.add(name)
            code = messages[0] if isinstance(messages, list) and messages else "type"
            ftype = level.fields[name]["type"]
            key = prefix + name
            if code == "choice":
                run.add(key, "choice", MSG_CHOICE)
            elif code == "duplicate":
                run.add(key, "duplicate", MSG_DUPLICATE_PHOTO)
            elif code == "type:text_long":
                run.add(key, "type", TYPE_MESSAGES["text_long"])
            else:
                run.add(key, "type", TYPE_MESSAGES[ftype])

        # 3. relevance and calculations, in dependency order
        settled = _Settled(env=env, relevant={}, bad=bad, position=position, prefix=prefix)
        for name in level.order:
            spec = level.fields[name]
            ftype = spec["type"]
            key = prefix + name
            shown = True
            if "relevant" in spec:
                value, failed = _evaluate(spec["relevant"], env, run, position=position)
                if failed:
                    run.add(key, "expression", MSG_EXPRESSION)
                shown = failed or expr.truthy(value)
            settled.relevant[name] = shown
            if ftype == "calculate":
                if shown:
                    value = self._calculate(spec, env, run, key, position)
                    if not _empty(value) or isinstance(value, list):
                        env[name] = value
                continue
            if ftype == "note":
                continue
            if ftype == REPEAT:
                self._settle_repeat(spec, answers.get(name), shown, settled, run)
                continue
            value = loaded.get(name)
            if not shown:
                if name in answers and not _empty(answers[name]):
                    run.dropped.append(key)
                run.drop_errors(key)  # a hidden answer is dropped, not judged
                continue
            if "choice_filter" in spec:
                offered = self._offered(spec, env, run, key, position)
                given = value if isinstance(value, list) else [value]
                if name not in bad and not _empty(value) and any(v not in offered for v in given):
                    run.add(key, "choice", MSG_CHOICE)
                    bad.add(name)
            if name in bad:
                continue
            if ftype in LIST_TYPES and value is None:
                value = []
            if value is not None and (value != "" or ftype in LIST_TYPES):
                env[name] = value
        return settled

    def _offered(self, spec, env, run: _Run, key: str, position) -> list[str]:
        """The choice values a choice_filter offers; a filter that cannot run offers the choice."""
        keys = sorted({k for c in spec["choices"] for k in c.get("properties", {})})
        offered, failed_once = [], False
        for choice in spec["choices"]:
            props = choice.get("properties", {})
            mapping = {**{k: props.get(k) for k in keys}, "name": choice["value"]}
            value, failed = _evaluate(
                spec["choice_filter"], env, run, position=position, choice=mapping
            )
            if failed and not failed_once:
                run.add(key, "expression", MSG_EXPRESSION)
                failed_once = True
            if failed or expr.truthy(value):
                offered.append(choice["value"])
        return offered

    def _settle_repeat(self, spec, answer, shown: bool, parent: _Settled, run: _Run) -> None:
        name = spec["name"]
        env = parent.env
        level = self.levels[name]
        # until settled (hidden, or a bad shape: for good), the repeat reads as no instances
        env[name] = expr.Nodeset(())
        env.update({inner: expr.Nodeset(()) for inner in level.fields})
        if not shown:
            if not _empty(answer):
                run.dropped.append(name)
            return
        count = None
        if "repeat_count" in spec:
            value, failed = _evaluate(spec["repeat_count"], env, run)
            if failed:
                run.add(name, "expression", MSG_EXPRESSION)
            else:
                count = _repeat_count(value)
        if answer is None:
            answer = []
        if not isinstance(answer, list) or not all(isinstance(i, dict) for i in answer):
            run.add(name, "type", MSG_REPEAT_TYPE)
            parent.repeats[name] = _RepeatResult(count, [], [], ok=False)
            return
        if len(answer) > MAX_REPEAT_INSTANCES:
            many = _repeat_count_messages(0, MAX_REPEAT_INSTANCES)[1]
            run.add(name, "count", many)
            parent.repeats[name] = _RepeatResult(count, [], [], ok=False)
            return
        instances: list[_Settled] = []
        cleaned: list[dict] = []
        sent = expr.Nodeset(tuple(answer))
        outside = {k: v for k, v in env.items() if k not in level.fields}
        for i, instance in enumerate(answer, start=1):
            inner_env = {**outside, name: sent}
            settled = self._settle(
                level, instance, inner_env, run, position=i, prefix=f"{name}[{i}]."
            )
            instances.append(settled)
            cleaned.append(
                {
                    inner: settled.env[inner]
                    for inner, inner_spec in level.fields.items()
                    if inner in settled.env and inner_spec["type"] != "note"
                }
            )
        env[name] = expr.Nodeset(tuple(cleaned))
        for inner in level.fields:
            env[inner] = expr.Nodeset(tuple(c.get(inner) for c in cleaned))
        parent.repeats[name] = _RepeatResult(count, instances, cleaned, ok=True)

    def _required(self, spec, env, run: _Run, key: str, *, current, position) -> bool:
        required = spec.get("required", False)
        if isinstance(required, bool):
            return required
        result, failed = _evaluate(required, env, run, current=current, position=position)
        if failed:
            run.add(key, "expression", MSG_EXPRESSION)
        return (not failed) and expr.truthy(result)

    def _check(self, level: _Level, settled: _Settled, run: _Run) -> None:
        """Step 4: required, constraint, counts; the values of every level are settled now."""
        env, position, prefix = settled.env, settled.position, settled.prefix
        for name in level.order:
            spec = level.fields[name]
            ftype = spec["type"]
            if not settled.relevant[name] or name in settled.bad:
                continue
            if ftype == REPEAT:
                self._check_repeat(spec, settled, run)
                continue
            if ftype not in ANSWER_TYPES:
                continue
            key = prefix + name
            value = env.get(name)
            required = self._required(spec, env, run, key, current=value, position=position)
            if _empty(value):
                if required:
                    default = _required_message(ftype, spec.get("min_count", 0))
                    run.add(key, "required", spec.get("required_message", default))
                continue
            if "constraint" in spec:
                result, failed = _evaluate(
                    spec["constraint"], env, run, current=value, position=position
                )
                if failed:
                    run.add(key, "expression", MSG_EXPRESSION)
                elif not expr.truthy(result):
                    run.add(key, "constraint", spec.get("constraint_message", MSG_CONSTRAINT))
            if ftype == "photo":
                lo, hi = spec.get("min_count", 0), spec.get("max_count")
                few, many = _count_messages(lo, hi)
                if len(value) < lo:
                    run.add(key, "count", few)
                elif hi is not None and len(value) > hi:
                    run.add(key, "count", many)

    def _check_repeat(self, spec, top: _Settled, run: _Run) -> None:
        name = spec["name"]
        result = top.repeats[name]
        if not result.ok:
            return
        got = len(result.cleaned)
        required = self._required(spec, top.env, run, name, current=None, position=None)
        lo = spec.get("min_count", 0)
        hi = min(spec.get("max_count", MAX_REPEAT_INSTANCES), MAX_REPEAT_INSTANCES)
        if got == 0 and required:
            run.add(name, "required", spec.get("required_message", _required_message(REPEAT, 0)))
        elif result.count is not None:
            if got != result.count:
                run.add(name, "repeat_count", _repeat_count_message(result.count, got))
        elif got:
            few, many = _repeat_count_messages(lo, hi)
            if got < lo:
                run.add(name, "count", few)
            elif got > hi:
                run.add(name, "count", many)
        level = self.levels[name]
        for i, instance in enumerate(result.instances):
            # the instance's own values over the form's final ones (its repeat's other
            # instances are not read: inner names mean this instance)
            own = {inner: instance.env.get(inner) for inner in level.fields}
            env = {**top.env, name: instance.env[name], **own}
            self._check(level, _Settled(env, instance.relevant, instance.bad, i + 1,
                                        instance.prefix), run)  # fmt: skip

    def _calculate(self, spec, env, run: _Run, key: str, position):
        if "names_where" in spec:
            rule = spec["names_where"]
            out = []
            for name in rule["fields"]:
                value = env.get(name)
                if value == rule["equals"] or (isinstance(value, list) and rule["equals"] in value):
                    out.append(name)
            return out
        value, failed = _evaluate(spec["calculation"], env, run, position=position)
        if failed:
            run.add(key, "expression", MSG_EXPRESSION)
            return None
        return _normalize_number(value)

    def _updates(self, env, run: _Run, errors) -> dict:
        out: dict[str, Any] = {}
        for rec_field, source in self.updates.items():
            name = _plain_reference(source)
            if name is not None:
                value = env.get(name)  # the stored value, type kept (lists, booleans, numbers)
            else:
                value, failed = _evaluate(source, env, run)
                if failed:
                    errors.setdefault(f"updates.{rec_field}", []).append(
                        _error("expression", MSG_EXPRESSION)
                    )
                    continue
                value = _normalize_number(value)
            if not _empty(value) or isinstance(value, list):
                out[rec_field] = value
        return out


def _ordering_refs(spec: Mapping[str, Any]) -> set[str]:
    """What a field's relevance, calculation and choice_filter read (they order evaluation)."""
    refs: set[str] = set()
    for key in ("relevant", "calculation", "choice_filter"):
        if key in spec:
            refs |= set(expr.references(spec[key]))
    if "names_where" in spec:
        refs |= set(spec["names_where"]["fields"])
    return (refs - RESERVED_NAMES) - {spec["name"]}


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
