"""The built-in form definitions and monthly task templates, and a cache of compiled forms.

Built-in definitions live in ``forms/definitions/<id>.v<version>.json``; a published version
never changes (tests pin each file's SHA-256), a change is a new version file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from pathlib import Path

from forms.compiler import CompiledForm, DefinitionError, compile_form

__all__ = [
    "DEFINITIONS_DIR",
    "TASK_TEMPLATES_PATH",
    "definition_digest",
    "get_builtin",
    "get_compiled",
    "latest_builtin",
    "load_builtin",
    "load_task_templates",
    "zh_text",
]

HERE = Path(__file__).resolve().parent
DEFINITIONS_DIR = HERE / "definitions"
TASK_TEMPLATES_PATH = HERE / "task_templates.json"
FILE_RE = re.compile(r"^(?P<id>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.json$")


def zh_text(text) -> str:
    """The Chinese of a bilingual text {"zh", "en"} (its English if it has no Chinese); a plain
    value as text; None as ""."""
    if isinstance(text, dict):
        return str(text.get("zh") or text.get("en") or "")
    return "" if text is None else str(text)


def load_builtin() -> list[dict]:
    """Every built-in definition (fresh dicts), sorted by (id, version).

    Raises DefinitionError if a file's name does not match the id and version inside it.
    """
    out = []
    for path in DEFINITIONS_DIR.glob("*.json"):
        match = FILE_RE.match(path.name)
        definition = json.loads(path.read_text(encoding="utf-8"))
        if (
            match is None
            or not isinstance(definition, dict)
            or definition.get("id") != match["id"]
            or definition.get("version") != int(match["version"])
        ):
            raise DefinitionError(
                path.name, ["file name must be <id>.v<version>.json matching its content"]
            )
        out.append(definition)
    return sorted(out, key=lambda d: (d["id"], d["version"]))


def get_builtin(form_id: str, version: int) -> dict | None:
    for definition in load_builtin():
        if definition["id"] == form_id and definition["version"] == version:
            return definition
    return None


def latest_builtin() -> dict[str, dict]:
    """The newest version of each built-in form, by id."""
    return {d["id"]: d for d in load_builtin()}  # sorted by version, so the last one wins


def load_task_templates() -> list[dict]:
    """The first secretary's monthly task templates:
    ``[{"key", "title": {"zh", "en"}, "per_month": 1|2, "evidence_photo": bool}, ...]``."""
    return json.loads(TASK_TEMPLATES_PATH.read_text(encoding="utf-8"))


def definition_digest(definition: dict) -> str:
    """SHA-256 of the definition's canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_cache: dict[tuple[str, int, str], CompiledForm] = {}
_lock = threading.Lock()


def get_compiled(definition: dict) -> CompiledForm:
    """Compile once per (id, version, content); later calls return the cached form.

    The key includes the content digest, so two different definitions that claim the same
    id and version (a mistake a published-version check should catch) never share a validator.
    The cached form holds its own deep copy of the definition.
    """
    key = (definition.get("id"), definition.get("version"), definition_digest(definition))
    form = _cache.get(key)
    if form is None:
        form = compile_form(copy.deepcopy(definition))
        with _lock:
            form = _cache.setdefault(key, form)
    return form
