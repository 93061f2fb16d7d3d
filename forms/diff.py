"""What changed between two versions of a form definition (issue 15: the desk lists versions with
their differences). Pure: plain definitions in (the JSON of docs/FORMS_FORMAT.md), plain data out.

`diff(old, new)` matches fields by name across the whole form (names are unique in a form,
inside repeat groups too), so a field moved into or out of a repeat is one changed field, not
one removed and one added. It gives

    {"added":   [item, ...],          # in the new version's order
     "removed": [item, ...],          # in the old version's order
     "changed": [item + {"changes": [change, ...]}, ...]}

where an item is {"name", "type", "label" (the Chinese label), "repeat" (the name of the repeat
group holding it, or None)} as the field is in the version that has it (the new one for
changed fields), and a change is one of

    {"what": "type" | "label" | "relevant" | "required" | "constraint" | "calculation"
             | "choice_filter" | "repeat" | "min_count" | "max_count" | "repeat_count",
     "old": ..., "new": ...}
    {"what": "choices_added" | "choices_removed", "values": [choice values]}
    {"what": "choice_labels", "values": [values whose label changed]}

Notes are fields like any other here (their label is what the inspector reads).
"""

from forms.definitions import zh_text

#: Properties compared as they are (missing = None), in the order changes are listed.
COMPARED = (
    "type",
    "label",
    "relevant",
    "required",
    "constraint",
    "calculation",
    "choice_filter",
    "min_count",
    "max_count",
    "repeat_count",
)


def fields_of(definition: dict | None) -> dict[str, tuple[dict, str | None]]:
    """Every field of a definition by name, repeats' inner fields included: (spec, repeat)."""
    out: dict[str, tuple[dict, str | None]] = {}
    for spec in (definition or {}).get("fields", []) or []:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue
        out.setdefault(spec["name"], (spec, None))
        if spec.get("type") == "repeat":
            for inner in spec.get("fields", []) or []:
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    out.setdefault(inner["name"], (inner, spec["name"]))
    return out


def _item(name: str, spec: dict, repeat: str | None) -> dict:
    return {
        "name": name,
        "type": spec.get("type"),
        "label": zh_text(spec.get("label")),
        "repeat": repeat,
    }


def _normal(key: str, value):
    """A property as compared: `required` absent means false; empty expressions mean none."""
    if key == "required":
        return False if value is None else value
    if value == "":
        return None
    return value


def _choices(spec: dict) -> dict:
    out = {}
    for choice in spec.get("choices", []) or []:
        if isinstance(choice, dict) and "value" in choice:
            out.setdefault(choice["value"], choice.get("label"))
    return out


def _changes(old: dict, new: dict, old_repeat, new_repeat) -> list[dict]:
    changes = []
    for key in COMPARED:
        before, after = _normal(key, old.get(key)), _normal(key, new.get(key))
        if before != after:
            changes.append({"what": key, "old": before, "new": after})
    if old_repeat != new_repeat:
        changes.append({"what": "repeat", "old": old_repeat, "new": new_repeat})
    before, after = _choices(old), _choices(new)
    added = [v for v in after if v not in before]
    removed = [v for v in before if v not in after]
    relabelled = [v for v in after if v in before and before[v] != after[v]]
    if added:
        changes.append({"what": "choices_added", "values": added})
    if removed:
        changes.append({"what": "choices_removed", "values": removed})
    if relabelled:
        changes.append({"what": "choice_labels", "values": relabelled})
    return changes


def diff(old: dict | None, new: dict | None) -> dict:
    """The fields added, removed and changed from `old` to `new` (see the module's docstring)."""
    before, after = fields_of(old), fields_of(new)
    added = [_item(n, s, r) for n, (s, r) in after.items() if n not in before]
    removed = [_item(n, s, r) for n, (s, r) in before.items() if n not in after]
    changed = []
    for name, (spec, repeat) in after.items():
        if name not in before:
            continue
        old_spec, old_repeat = before[name]
        changes = _changes(old_spec, spec, old_repeat, repeat)
        if changes:
            changed.append({**_item(name, spec, repeat), "changes": changes})
    return {"added": added, "removed": removed, "changed": changed}


#: How the desk names each kind of change.
CHANGE_NAMES = {
    "type": "题型",
    "label": "标签",
    "relevant": "显示条件",
    "required": "必填",
    "constraint": "约束",
    "calculation": "计算",
    "choice_filter": "选项筛选",
    "min_count": "最少项数",
    "max_count": "最多项数",
    "repeat_count": "项数表达式",
    "repeat": "所在重复组",
    "choices_added": "新增选项",
    "choices_removed": "删除选项",
    "choice_labels": "选项标签改动",
}


def describe(change: dict) -> str:
    """A change in one line of Chinese, as the desk shows it."""
    name = CHANGE_NAMES.get(change["what"], change["what"])
    if "values" in change:
        return f"{name}：{'、'.join(str(v) for v in change['values'])}"

    def text(value) -> str:
        if value is None:
            return "（无）"
        if value is True:
            return "是"
        if value is False:
            return "否"
        if isinstance(value, dict):
            return zh_text(value)
        return str(value)

    return f"{name}：{text(change['old'])} → {text(change['new'])}"
