"""A supervisor settles a conflict: the server makes a new observation that saw both sides.

The resolution is no special case in the merge: it is an observation like a phone's, stamped
with the server's clock (newer than everything the server holds) and with a `base` for the
field at least as new as both conflicting observations, so by sync/merge.py's rule it has
"seen" both and resolves the conflict. It goes through `push.apply_observation`, the one path
every record change takes, so phones get the value on their next pull.

The value a supervisor types is checked against the field's type from the form definition
(yes/no, a choice, a number, a date, text) before anything is written.
"""

import math
import re
import uuid
from datetime import date

from forms.definitions import zh_text
from sync.clock import Clock, decode
from sync.merge import Observation, canonical_json, same_value

from . import push
from .storage import Storage

# Record fields whose form expression is not a plain `${answer}` (docs/CONTRACTS.md).
RECORD_LABELS = {
    "status": "状态",
    "harmless": "是无害化卫生厕所",
    "last_inspected": "最近检查日期",
    "last_cleared": "最近清运日期",
    "next_expiry": "灭火器最早到期日",
    "score": "清洁评分",
    "grade": "等级",
    "failed_items": "不合格项目",
    "completed_on": "完成日期",
}
STATUS_CHOICES = [("active", "在用"), ("retired", "已撤销")]
TASK_STATUS_CHOICES = [
    ("not_started", "未开始"),
    ("in_progress", "进行中"),
    ("done", "已完成"),
    ("overdue", "逾期"),
]
FORM_TYPES = {
    "yes_no": "bool",
    "select_one": "choice",
    "select_many": "multi",
    "integer": "integer",
    "decimal": "number",
    "date": "date",
    "text": "text",
}
_REF = re.compile(r"\$\{(\w+)\}")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TEXT = 5000


class ResolveError(Exception):
    """The resolution cannot be made (Chinese message for the supervisor)."""


def spec_of_form_field(field: dict) -> dict:
    """Type, choices and label of one form field."""
    return {
        "type": FORM_TYPES.get(field.get("type"), "text"),
        "choices": [(c["value"], zh_text(c["label"])) for c in field.get("choices", [])],
        "label": zh_text(field.get("label")),
    }


def _infer(values) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "number"
    if present and all(isinstance(v, list) for v in present):
        return "multi"
    if present and all(isinstance(v, str) and _DATE.match(v) for v in present):
        return "date"
    return "text"


def field_spec(definition: dict | None, field: str, values=(), *, record_type="facility") -> dict:
    """What a record field holds, from the form that writes it: {"type", "choices", "label"}.

    The form's `updates` names the answer behind the field; a plain `${answer}` gives that
    answer's type, an expression over answers of one type gives that type, anything else is
    inferred from the conflicting values themselves.
    """
    if field == "status":
        choices = TASK_STATUS_CHOICES if record_type == "task" else STATUS_CHOICES
        return {
            "type": "choice",
            "choices": list(choices),
            "label": "完成情况" if record_type == "task" else "状态",
        }
    fields = {f["name"]: f for f in (definition or {}).get("fields", [])}
    expression = (definition or {}).get("updates", {}).get(field, "")
    refs = [r for r in _REF.findall(expression) if r in fields]
    if expression.strip() == "${observed_on}":
        return {"type": "date", "choices": [], "label": RECORD_LABELS.get(field, field)}
    if len(refs) == 1 and expression.strip() == f"${{{refs[0]}}}":
        spec = spec_of_form_field(fields[refs[0]])
        if fields[refs[0]].get("type") == "calculate":
            spec["type"] = _infer(values)
        return spec
    types = {FORM_TYPES.get(fields[r].get("type")) for r in refs}
    label = RECORD_LABELS.get(field) or (
        zh_text(fields[field]["label"]) if field in fields else field
    )
    if len(types) == 1 and None not in types:
        spec = spec_of_form_field(fields[refs[0]])
        return {**spec, "label": label}
    return {"type": _infer(values), "choices": [], "label": label}


def display_value(spec: dict, value) -> str:
    """A value as the supervisor reads it: 是/否, the choice's label, a list joined with 、."""
    if value is None or value == "":
        return "—"
    labels = dict(spec.get("choices", []))
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return "、".join(str(labels.get(v, v)) for v in value) if value else "（无）"
    if isinstance(value, dict):
        if {"lat", "lon"} <= value.keys():
            return f"{value['lat']:.6f}, {value['lon']:.6f}"
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(labels.get(value, value))


def parse_value(spec: dict, raw):
    """The typed value from what the supervisor entered (str, or list of str for multi)."""
    kind = spec["type"]
    values = [c for c, _ in spec.get("choices", [])]
    if kind == "multi":
        items = raw if isinstance(raw, list) else [raw] if raw else []
        items = [str(i).strip() for i in items if str(i).strip()]
        if values:
            bad = [i for i in items if i not in values]
            if bad:
                raise ResolveError(f"不是可选的值：{'、'.join(bad)}")
            return [v for v in values if v in items]
        return list(dict.fromkeys(items))
    text = (raw[0] if isinstance(raw, list) and raw else raw or "").strip()
    if kind == "bool":
        if text in ("true", "1", "yes", "是"):
            return True
        if text in ("false", "0", "no", "否"):
            return False
        raise ResolveError("请选择“是”或“否”")
    if kind == "choice":
        if text not in values:
            raise ResolveError("请从可选项中选择一个值")
        return text
    if kind in ("integer", "number"):
        try:
            number = float(text)
        except ValueError:
            raise ResolveError("请输入数字") from None
        if not math.isfinite(number):
            raise ResolveError("请输入有效的数字")
        if kind == "integer":
            if not number.is_integer():
                raise ResolveError("请输入整数")
            return int(number)
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "date":
        try:
            if not _DATE.match(text):
                raise ValueError
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ResolveError("请输入日期，格式为 YYYY-MM-DD") from None
    if not text:
        raise ResolveError("请输入新的值")
    if len(text) > MAX_TEXT:
        raise ResolveError(f"不能超过 {MAX_TEXT} 字")
    return text


def resolution_observation(
    conflict: dict, value, *, clocks: dict[str, str], server_clock: Clock, seen: str | None
) -> Observation:
    """The server's observation settling `conflict` with `value` (pure).

    `clocks` are the encoded clocks of the two conflicting observations; `seen` the clock of
    the field's value the supervisor had on screen, so the resolution also counts as having
    seen it (an observation that arrived after the page was drawn was not seen, and may
    conflict with the resolution — correctly).
    """
    known = [decode(clocks[conflict["a"]]), decode(clocks[conflict["b"]])]
    if seen:
        known.append(decode(seen))
    base = max(known)
    if not server_clock > base:
        raise ResolveError("服务器时钟异常，无法处理")
    return Observation(
        id=str(uuid.uuid4()),
        record_id=conflict["record_id"],
        clock=server_clock,
        fields={conflict["field"]: value},
        base={conflict["field"]: base},
    )


def resolve(
    store: Storage,
    conflict_id: str,
    value,
    *,
    kept: str,
    user_id: int,
    now_ms: int,
    now_iso: str,
    window_ms: int,
    ahead_ms: int,
    seen: str | None = None,
) -> str:
    """Apply the supervisor's value as a server observation; returns its id.

    ResolveError when the conflict is gone or already resolved (nothing is written then).
    """
    with store.write():
        conflict = store.desk_conflict(conflict_id)
        if conflict is None:
            raise ResolveError("找不到该冲突")
        # Two supervisors at once (PostgreSQL): the second reads the conflict again after the
        # first's write, and finds it resolved.
        store.lock_records([conflict["record_id"]])
        conflict = store.desk_conflict(conflict_id)
        if conflict["resolved_by"]:
            raise ResolveError("该冲突已经处理过了")
        clocks = store.observation_clocks([conflict["a"], conflict["b"]])
        if len(clocks) != 2:
            raise ResolveError("冲突的记录不完整，无法处理")
        if seen is not None:
            try:
                decode(seen)
            except ValueError:
                seen = None
        obs = resolution_observation(
            conflict,
            value,
            clocks=clocks,
            server_clock=push.next_server_clock(store, now_ms, ahead_ms),
            seen=seen,
        )
        push.apply_observation(store, conflict["record_type"], obs, window_ms, at=now_iso)
        resolved = [
            c["id"]
            for c in store.conflicts(record_id=conflict["record_id"])
            if c["resolved_by"] == obs.id
        ]
        if conflict_id not in resolved:
            raise ResolveError("处理没有生效，请刷新后重试")
        store.audit(
            "conflict.resolve",
            at=now_iso,
            user_id=user_id,
            entity="conflict",
            entity_id=conflict_id,
            detail={
                "observation": obs.id,
                "clock": str(obs.clock),
                "record_id": conflict["record_id"],
                "field": conflict["field"],
                "value": value,
                "kept": kept,
                "resolved": resolved,
            },
        )
    return obs.id


# -- every open conflict of one record in one step -------------------------------------------


def candidates(conflicts: list[dict]) -> list:
    """The distinct values one field's open conflicts hold, the standing (winner's) first."""
    ordered = sorted(
        (
            (side != c["winner"], value)
            for c in conflicts
            for side, value in ((c["a"], c["a_value"]), (c["b"], c["b_value"]))
        ),
        key=lambda pair: pair[0],
    )
    out: list = []
    for _, value in ordered:
        if not any(same_value(value, v) for v in out):
            out.append(value)
    return out


def choice_key(value) -> str:
    """How a candidate travels in the form: its canonical JSON, so a value that changed since
    the page was drawn is refused, never mistaken for another."""
    return canonical_json(value)


def by_field(conflicts: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in sorted(conflicts, key=lambda c: (c["field"], c["id"])):
        out.setdefault(c["field"], []).append(c)
    return out


def resolve_record(
    store: Storage,
    record_id: str,
    record_type: str,
    chosen: dict[str, str],
    *,
    user_id: int,
    now_ms: int,
    now_iso: str,
    window_ms: int,
    ahead_ms: int,
    seen: dict[str, str] | None = None,
) -> list[str]:
    """Settle every open conflict of one record at once: for each conflicting field, the
    supervisor picked one of its candidate values (`chosen`: field -> `choice_key`); one
    server observation per field, each having seen every side of that field's conflicts, all
    in one transaction. Returns the observations' ids; ResolveError writes nothing."""
    seen = seen or {}
    made = []
    with store.write():
        store.lock_records([record_id])
        fields = by_field(store.open_conflicts_of([record_id]))
        if not fields:
            raise ResolveError("这条记录没有待处理的冲突")
        missing = [f for f in fields if f not in chosen]
        if missing:
            raise ResolveError("请为每一项不一致的内容选择正确的值（可能有新的冲突，请刷新后重试）")
        for field, conflicts in fields.items():
            values = [v for v in candidates(conflicts) if choice_key(v) == chosen[field]]
            if not values:
                raise ResolveError("所选的值已不在冲突中，请刷新后重试")
            clocks = store.observation_clocks({c[s] for c in conflicts for s in ("a", "b")})
            known = [decode(v) for v in clocks.values()]
            try:
                known.append(decode(seen[field]))
            except (KeyError, TypeError, ValueError):
                pass
            clock = push.next_server_clock(store, now_ms, ahead_ms)
            if not known or not clock > max(known):
                raise ResolveError("服务器时钟异常，无法处理")
            obs = Observation(
                id=str(uuid.uuid4()),
                record_id=record_id,
                clock=clock,
                fields={field: values[0]},
                base={field: max(known)},
            )
            push.apply_observation(store, record_type, obs, window_ms, at=now_iso)
            after = {c["id"]: c for c in store.conflicts(record_id=record_id)}
            if any(after[c["id"]]["resolved_by"] != obs.id for c in conflicts):
                raise ResolveError("处理没有生效，请刷新后重试")
            for c in conflicts:
                store.audit(
                    "conflict.resolve",
                    at=now_iso,
                    user_id=user_id,
                    entity="conflict",
                    entity_id=c["id"],
                    detail={
                        "observation": obs.id,
                        "clock": str(obs.clock),
                        "record_id": record_id,
                        "field": field,
                        "value": values[0],
                        "kept": "record_form",
                        "resolved": [c["id"] for c in conflicts],
                    },
                )
            made.append(obs.id)
    return made
