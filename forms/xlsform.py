"""XLSForm import and export (docs/FORMS_FORMAT.md, "XLSForm").

``import_xlsform(data: bytes) -> ImportResult``: the workbook is checked as a zip first (size and
entry count, so a zip bomb is refused before it is opened), then with openpyxl for formula cells,
then read with pyxform's ``xlsx_to_dict`` (the reference XLSForm reader: survey, choices and
settings rows as data) and translated row by row into our form JSON, which forms/compiler.py
checks last. Every problem is an ``XlsError`` naming the sheet, row and column, with a Chinese
and an English reason; the whole file is checked, so one run lists every error. Nothing here
raises on bad input.

``export_xlsform(definition) -> bytes``: the form as an XLSForm workbook (openpyxl); importing it
again gives the same definition (tests/test_xlsform.py checks every built-in form).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field

from forms.compiler import CHOICE_VALUE_RE

__all__ = [
    "MAX_ENTRIES",
    "MAX_SURVEY_ROWS",
    "MAX_UNCOMPRESSED",
    "ImportResult",
    "XlsError",
    "export_xlsform",
    "import_xlsform",
]

MAX_UNCOMPRESSED = 50 * 1024 * 1024  # bytes, the zip's entries together
MAX_ENTRIES = 1000
MAX_SURVEY_ROWS = 2000

ZH, EN = "中文 (zh)", "English (en)"
YES_NO_LIST = "yes_no"
TRUE_WORDS = {"yes", "true", "true()", "1"}
FALSE_WORDS = {"no", "false", "false()", "0"}
SIMPLE_TYPES = {
    "text": "text",
    "integer": "integer",
    "int": "integer",
    "decimal": "decimal",
    "date": "date",
    "datetime": "datetime",
    "dateTime": "datetime",
    "geopoint": "geopoint",
    "image": "photo",
    "photo": "photo",
    "note": "note",
    "calculate": "calculate",
    "acknowledge": "yes_no",
    "time": "text",
}
# XLSForm's metadata rows (ODK/Kobo forms nearly always have start and end). Times become
# calculates of the observation time, so ${start} still reads; the rest the server records
# itself (who sent it, with which account), so they are left out. Each gets a notice.
METADATA_CALCULATIONS = {"start": "now()", "end": "now()", "today": "today()"}
METADATA_DROPPED = {
    "deviceid", "subscriberid", "simserial", "phonenumber", "username", "email", "audit",
    "start-geopoint", "background-audio",
}  # fmt: skip
TIME_CONSTRAINT = "regex(., '^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$')"
# Columns of the survey sheet we read; others are errors (never silently dropped).
SURVEY_COLUMNS = {
    "type",
    "name",
    "label",
    "hint",
    "relevant",
    "required",
    "constraint",
    "constraint_message",
    "calculation",
    "default",
    "read_only",
    "appearance",
    "min_count",
    "max_count",
    "names_where",
    "choice_filter",
    "required_message",
    "repeat_count",
}
# Survey columns real ODK/Kobo workbooks carry that change nothing a phone here checks: read
# past with one notice per column (Kobo's bookkeeping, HXL tags, label media the offline app
# does not show, widget parameters such as max-pixels, guidance hints).
IGNORED_COLUMNS = {
    "$kuid": ("Kobo 的内部编号", "Kobo's internal id"),
    "$autoname": ("Kobo 的内部编号", "Kobo's internal id"),
    "$given_name": ("Kobo 的内部编号", "Kobo's internal id"),
    "$prev": ("Kobo 的内部编号", "Kobo's internal id"),
    "$autovalue": ("Kobo 的内部编号", "Kobo's internal id"),
    "hxl": ("HXL 标签", "HXL tags"),
    "tags": ("标签", "tags"),
    "media": ("题目配图、配音不在手机上显示", "label images and audio are not shown on the phone"),
    "parameters": (
        "控件参数（如 max-pixels：照片由手机按服务器设置压缩）",
        "widget parameters (e.g. max-pixels: photos are downsized as the server sets)",
    ),
    "guidance_hint": ("指导提示未导入，请写进 hint", "guidance hints are not imported: use hint"),
}
SETTINGS_COLUMNS = {
    "form_id",
    "version",
    "form_title",
    "title",
    "default_language",
    "target",
    "description",
    "updates",
    "instance_name",
    "style",
}
CHOICES_COLUMNS = {"list_name", "name", "label"}
# A choices column that becomes a choice property must be readable as a bare name.
PROPERTY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED_WORDS = {"and", "or", "div", "mod", "name"}


@dataclass
class XlsError:
    sheet: str
    row: int | None
    column: str | None
    zh: str
    en: str

    def as_dict(self) -> dict:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "message": {"zh": self.zh, "en": self.en},
        }

    def __str__(self) -> str:
        where = self.sheet + (f" 第{self.row}行" if self.row else "")
        where += f" [{self.column}]" if self.column else ""
        return f"{where}: {self.zh} / {self.en}"


@dataclass
class ImportResult:
    definition: dict | None
    errors: list[XlsError] = field(default_factory=list)
    #: what was read differently from ODK (metadata rows), said so it is never silent
    notices: list[XlsError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.definition is not None


def _lang_code(name: str) -> str:
    """'中文 (zh)' -> 'zh', 'English (en)' -> 'en', 'zh' -> 'zh'; the names Chinese workbooks
    use without a code ('中文', 'Chinese', 'zh-CN', 'English', '英文') too."""
    m = re.search(r"\(([A-Za-z_-]+)\)\s*$", name)
    code = (m.group(1) if m else name).strip().lower().replace("_", "-")
    return _LANGUAGE_NAMES.get(code, code)


_LANGUAGE_NAMES = {
    **dict.fromkeys(
        ("中文", "汉语", "简体中文", "chinese", "zh-cn", "zh-hans", "cn", "zh-hans-cn"), "zh"
    ),
    **dict.fromkeys(("英文", "英语", "english", "en-us", "en-gb"), "en"),
}


def _split(column: str) -> tuple[str, str | None]:
    base, _, lang = column.partition("::")
    return base.strip().lower(), (lang.strip() or None)


class _Translator:
    def __init__(self, book: dict, filename: str | None = None):
        self.book = book
        #: the uploaded file's name without .xlsx: the form id and title when settings lack them
        self.stem = re.sub(r"\.xlsx?$", "", filename or "", flags=re.I).strip()
        self.errors: list[XlsError] = []
        self.notices: list[XlsError] = []
        settings = (book.get("settings") or [{}])[0] if book.get("settings") else {}
        self.settings = settings
        self.default_lang = _lang_code(settings.get("default_language") or "zh")

    def err(self, sheet, row, column, zh, en):
        self.errors.append(XlsError(sheet, row, column, zh, en))

    def notice(self, sheet, row, column, zh, en):
        self.notices.append(XlsError(sheet, row, column, zh, en))

    def texts(self, row: dict, base: str, sheet: str, rown: int | None) -> dict | None:
        """A bilingual text from `base` / `base::lang` columns; a missing language falls back
        to the other one (a Chinese-only form shows Chinese in English too)."""
        out = {}
        for column, value in row.items():
            b, lang = _split(column)
            if b != base or value in (None, ""):
                continue
            code = _lang_code(lang) if lang else self.default_lang
            if code not in ("zh", "en"):
                self.err(
                    sheet,
                    rown,
                    column,
                    f"不支持的语言 {lang}，只支持 zh 和 en",
                    f"language {lang} is not supported, only zh and en",
                )
                continue
            out[code] = str(value)
        if not out:
            return None
        out.setdefault("zh", out.get("en"))
        out.setdefault("en", out.get("zh"))
        return {"zh": out["zh"], "en": out["en"]}

    def choices(self) -> dict[str, list[dict]]:
        """The choice lists. Columns other than list_name, name and label (with its languages)
        are the choices' properties, read by a choice_filter (bare names)."""
        lists: dict[str, list[dict]] = {}
        header = (self.book.get("choices_header") or [{}])[0] or {}
        for column in header:
            base, lang = _split(column)
            if base in CHOICES_COLUMNS and (base == "label" or lang is None):
                continue
            if base in IGNORED_COLUMNS:
                zh, en = IGNORED_COLUMNS[base]
                self.notice("choices", 1, column, f"这一列不读：{zh}", f"column ignored: {en}")
                continue
            if lang is not None or not PROPERTY_RE.match(column) or column in RESERVED_WORDS:
                self.err(
                    "choices",
                    1,
                    column,
                    "选项表的这一列不支持（选项属性列名只能是字母、数字和 _，且不能带 ::）",
                    "this choices column is not supported (a property column is a name of "
                    "letters, digits and _, without ::)",
                )
        for i, row in enumerate(self.book.get("choices") or [], start=2):
            if not row:
                continue
            name, value = row.get("list_name"), row.get("name")
            if not name or value is None:
                self.err(
                    "choices",
                    i,
                    "list_name" if not name else "name",
                    "选项缺少 list_name 或 name",
                    "a choice needs list_name and name",
                )
                continue
            label = self.texts(row, "label", "choices", i)
            if label is None:
                self.err("choices", i, "label", "选项缺少标签", "a choice needs a label")
                continue
            if not CHOICE_VALUE_RE.fullmatch(str(value)):
                self.err(
                    "choices",
                    i,
                    "name",
                    f"选项值 {value} 只能用文字、数字、_ . -（不能有空格，最多 64 个字）",
                    f"choice name {value} must be letters, digits, _ . or - (no spaces, up to 64)",
                )
                continue
            choice = {"value": str(value), "label": label}
            properties = {
                column: str(text)
                for column, text in row.items()
                if _split(column)[0] not in CHOICES_COLUMNS
                and _split(column)[0] not in IGNORED_COLUMNS
                and "::" not in column
                and text not in (None, "")
            }
            if properties:
                choice["properties"] = properties
            lists.setdefault(name, []).append(choice)
        return lists

    def translate(self) -> dict | None:
        book = self.book
        names = [s.lower() for s in book.get("sheet_names", [])]
        if "survey" not in names or not book.get("survey_header"):
            self.err(
                "survey",
                None,
                None,
                "不是 XLSForm：缺少 survey 工作表",
                "not an XLSForm: there is no survey sheet",
            )
            return None
        header = [h for h in book["survey_header"][0]] if book["survey_header"] else []
        if "type" not in header or "name" not in header:
            self.err(
                "survey",
                1,
                None,
                "不是 XLSForm：survey 表缺少 type 或 name 列",
                "not an XLSForm: the survey sheet has no type or name column",
            )
            return None
        rows = book.get("survey") or []
        if len(rows) > MAX_SURVEY_ROWS:
            self.err(
                "survey",
                MAX_SURVEY_ROWS + 2,
                None,
                f"survey 表超过 {MAX_SURVEY_ROWS} 行（共 {len(rows)} 行）",
                f"the survey sheet has more than {MAX_SURVEY_ROWS} rows ({len(rows)})",
            )
            return None
        lists = self.choices()
        fields: list[dict] = []
        self.rows: dict[str, int] = {}
        # Open groups and repeats, outermost first: (kind, relevant, row, repeat spec or None).
        # Groups are flattened: a group's label becomes a note, its relevant is ANDed into
        # each field inside it. A repeat is one field whose "fields" hold the rows inside it.
        stack: list[tuple[str, str | None, int, dict | None]] = []

        def container() -> list[dict]:
            repeat = next((f for k, _r, _i, f in reversed(stack) if k == "repeat"), None)
            return repeat["fields"] if repeat is not None else fields

        def outer_relevant() -> list[str]:
            """Relevants of the groups around a row, inside its repeat (the repeat's own
            relevant hides the whole repeat)."""
            out: list[str] = []
            for k, rel, _i, _f in stack:
                if k == "repeat":
                    out = []
                elif rel:
                    out.append(str(rel))
            return out

        def add(spec: dict) -> None:
            outer = outer_relevant()
            if outer:
                parts = [*outer, *([spec["relevant"]] if "relevant" in spec else [])]
                spec["relevant"] = " and ".join(f"({p})" for p in parts)
            other = spec.pop("_other", None)
            container().extend([spec] if other is None else [spec, other])

        ignored: set[str] = set()
        for i, row in enumerate(rows, start=2):
            if not row:
                continue
            for column in row:
                base = _split(column)[0]
                if base in IGNORED_COLUMNS:
                    if base not in ignored:
                        ignored.add(base)
                        zh, en = IGNORED_COLUMNS[base]
                        self.notice(
                            "survey", i, column, f"这一列不读：{zh}", f"column ignored: {en}"
                        )
                elif base not in SURVEY_COLUMNS:
                    self.err("survey", i, column, "这一列暂不支持", "this column is not supported")
            rtype = str(row.get("type") or "").strip()
            words = rtype.split()
            kind = (
                " ".join(words[:2]).lower().replace("_", " ")
                if words[:1] in (["begin"], ["end"])
                else (words[0].lower().replace("_", " ") if words else "")
            )
            if kind == "begin repeat":
                open_repeat = next((r for k, _r, r, _f in stack if k == "repeat"), None)
                spec = self.repeat_field(row, i)
                if open_repeat is not None:
                    self.err(
                        "survey",
                        i,
                        "type",
                        f"重复组不能嵌套（第{open_repeat}行的重复组还没有结束）",
                        f"a repeat cannot be inside another repeat (the one of row "
                        f"{open_repeat} is still open)",
                    )
                elif spec is not None:
                    add(spec)
                stack.append(("repeat", None, i, spec if open_repeat is None else None))
                continue
            if kind == "end repeat":
                while stack and stack[-1][0] == "group":
                    self.err(
                        "survey",
                        stack[-1][2],
                        "type",
                        f"begin group 在第{i}行的 end repeat 之前没有结束（组不能跨出重复组）",
                        f"begin group is not ended before the end repeat of row {i} (a group "
                        "cannot cross a repeat's end)",
                    )
                    stack.pop()
                if not stack:
                    self.err(
                        "survey",
                        i,
                        "type",
                        "end repeat 没有对应的 begin repeat",
                        "end repeat without a begin repeat",
                    )
                else:
                    stack.pop()
                continue
            if kind == "begin group":
                label = self.texts(row, "label", "survey", i)
                if label is not None:  # the group's title becomes a note, so it is not lost
                    note = self.field_base(row, i, "note", label)
                    if note:
                        add(note)
                stack.append(("group", row.get("relevant"), i, None))
                continue
            if kind == "end group":
                if not stack or stack[-1][0] != "group":
                    self.err(
                        "survey",
                        i,
                        "type",
                        "end group 没有对应的 begin group"
                        + ("（重复组还没有结束）" if stack else ""),
                        "end group without a begin group"
                        + (" (a repeat is still open)" if stack else ""),
                    )
                else:
                    stack.pop()
                continue
            if not rtype:
                self.err("survey", i, "type", "缺少题型", "the type is missing")
                continue
            if row.get("repeat_count"):
                self.err(
                    "survey",
                    i,
                    "repeat_count",
                    "只有 begin repeat 行可以写 repeat_count",
                    "only a begin repeat row may have a repeat_count",
                )
            spec = self.row_field(row, i, words, lists)
            if spec is not None:
                add(spec)
        for kind, _rel, i, _f in stack:
            self.err(
                "survey",
                i,
                "type",
                f"begin {kind} 没有对应的 end {kind}",
                f"begin {kind} without a matching end {kind}",
            )
        return self.top(fields)

    def repeat_field(self, row, i) -> dict | None:
        label = self.texts(row, "label", "survey", i)
        if label is None:
            self.err("survey", i, "label", "缺少标签", "the label is missing")
            return None
        spec = self.field_base(row, i, "repeat", label)
        if spec is None:
            return None
        self.required(row, i, spec, answerable=True)
        if row.get("repeat_count") not in (None, ""):
            spec["repeat_count"] = str(row["repeat_count"]).strip()
        self.counts(row, i, spec)
        for column in ("constraint", "calculation", "default", "read_only", "choice_filter"):
            if row.get(column) not in (None, ""):
                self.err(
                    "survey",
                    i,
                    column,
                    f"重复组不能写 {column}",
                    f"a repeat cannot have a {column}",
                )
        spec["fields"] = []
        return spec

    def required(self, row, i, spec, *, answerable: bool) -> None:
        if row.get("required"):
            if not answerable:
                self.err(
                    "survey", i, "required", "这一题型不能设为必填", "this type cannot be required"
                )
            else:
                word = str(row["required"]).strip()
                if word.lower() in TRUE_WORDS:
                    spec["required"] = True
                elif word.lower() in FALSE_WORDS:
                    spec["required"] = False
                else:
                    spec["required"] = word
        message = self.texts(row, "required_message", "survey", i)
        if message:
            spec["required_message"] = message

    def counts(self, row, i, spec) -> None:
        for key in ("min_count", "max_count"):
            if row.get(key) not in (None, ""):
                try:
                    spec[key] = int(float(row[key]))
                except ValueError:
                    self.err("survey", i, key, f"{key} 必须是整数", f"{key} must be an integer")

    def field_base(self, row, i, ftype, label) -> dict | None:
        name = str(row.get("name") or "").strip()
        if not name:
            self.err("survey", i, "name", "缺少字段名", "the name is missing")
            return None
        if name in self.rows:
            self.err(
                "survey",
                i,
                "name",
                f"字段名 {name} 重复（第{self.rows[name]}行已有）",
                f"duplicate field name {name} (also row {self.rows[name]})",
            )
            return None
        self.rows[name] = i
        spec = {"name": name, "type": ftype, "label": label}
        hint = self.texts(row, "hint", "survey", i)
        if hint:
            spec["hint"] = hint
        for key in ("relevant", "appearance"):
            if row.get(key):
                spec[key] = str(row[key])
        return spec

    def row_field(self, row, i, words, lists) -> dict | None:
        head = words[0]
        choices = None
        if head in ("select_one", "select_multiple", "select_one_from_file"):
            if head == "select_one_from_file" or len(words) < 2:
                self.err(
                    "survey",
                    i,
                    "type",
                    "选择题需要写明选项列表（select_one 列表名）",
                    "a select needs a choice list (select_one LIST)",
                )
                return None
            list_name, extra = words[1], words[2:]
            if extra not in ([], ["or_other"]):
                self.err("survey", i, "type", "无法识别的题型", f"unknown type {' '.join(words)}")
                return None
            if list_name not in lists:
                self.err(
                    "survey",
                    i,
                    "type",
                    f"选项表里没有列表 {list_name}",
                    f"no choice list {list_name} in the choices sheet",
                )
                return None
            choices = [dict(c) for c in lists[list_name]]
            values = [c["value"] for c in choices]
            plain = not row.get("choice_filter") and not any("properties" in c for c in choices)
            if head == "select_one" and not extra and plain and sorted(values) == ["no", "yes"]:
                ftype, choices = "yes_no", None
            else:
                ftype = "select_one" if head == "select_one" else "select_many"
            if extra:
                choices.append({"value": "other", "label": {"zh": "其他", "en": "Other"}})
        elif head in METADATA_CALCULATIONS and len(words) == 1:
            ftype, row = "calculate", {**row, "calculation": METADATA_CALCULATIONS[head]}
            zh, en = (
                ("观察日期", "observation date")
                if head == "today"
                else ("提交时间", "submission time")
            )
            self.notice(
                "survey",
                i,
                "type",
                f"{head} 记为{zh}（计算字段 {METADATA_CALCULATIONS[head]}），不是打开表单的时刻",
                f"{head} is recorded as the {en} (a calculate of {METADATA_CALCULATIONS[head]}),"
                " not when the form was opened",
            )
        elif head in METADATA_DROPPED and len(words) == 1:
            self.notice(
                "survey",
                i,
                "type",
                f"{head} 不单独保存：服务器已记录提交人的账号和提交时间",
                f"{head} is not kept as a field: the server records the account that sent each"
                " submission and when",
            )
            return None
        elif head in SIMPLE_TYPES and len(words) == 1:
            ftype = SIMPLE_TYPES[head]
        else:
            self.err(
                "survey",
                i,
                "type",
                f"题型 {' '.join(words)} 暂不支持",
                f"type {' '.join(words)} is not supported",
            )
            return None
        label = self.texts(row, "label", "survey", i)
        if label is None:
            if ftype == "calculate":
                label = {"zh": str(row.get("name") or ""), "en": str(row.get("name") or "")}
            else:
                self.err("survey", i, "label", "缺少标签", "the label is missing")
                return None
        spec = self.field_base(row, i, ftype, label)
        if spec is None:
            return None
        if choices is not None:
            spec["choices"] = choices
        if row.get("choice_filter"):
            if choices is None:
                self.err(
                    "survey",
                    i,
                    "choice_filter",
                    "只有选择题可以写 choice_filter",
                    "only a select may have a choice_filter",
                )
            else:
                spec["choice_filter"] = str(row["choice_filter"])
        self.required(row, i, spec, answerable=ftype not in ("note", "calculate"))
        constraint = row.get("constraint")
        if head == "time":
            constraint = f"({constraint}) and {TIME_CONSTRAINT}" if constraint else TIME_CONSTRAINT
        if head == "acknowledge":
            constraint = f"({constraint}) and . = true()" if constraint else ". = true()"
        if constraint:
            spec["constraint"] = str(constraint)
        message = self.texts(row, "constraint_message", "survey", i)
        if message:
            spec["constraint_message"] = message
        if row.get("calculation"):
            if ftype != "calculate":
                self.err(
                    "survey",
                    i,
                    "calculation",
                    "只有 calculate 题型可以写 calculation",
                    "only calculate rows may have a calculation",
                )
            else:
                spec["calculation"] = str(row["calculation"])
        if row.get("names_where"):
            try:
                spec["names_where"] = json.loads(row["names_where"])
            except ValueError:
                self.err(
                    "survey",
                    i,
                    "names_where",
                    "names_where 必须是 JSON",
                    "names_where must be JSON",
                )
        if row.get("default") not in (None, ""):
            spec["default"] = self.default(ftype, str(row["default"]), i)
        if row.get("read_only"):
            word = str(row["read_only"]).strip().lower()
            if word in TRUE_WORDS:
                spec["read_only"] = True
            elif word not in FALSE_WORDS:
                self.err(
                    "survey",
                    i,
                    "read_only",
                    "read_only 只能是 yes 或 no",
                    "read_only must be yes or no",
                )
        self.counts(row, i, spec)
        if "choices" in spec and extra_other(words):
            spec["_other"] = {
                "name": f"{spec['name']}_other",
                "type": "text",
                "label": {"zh": "请注明其他", "en": "Specify other"},
                "relevant": f"selected(${{{spec['name']}}}, 'other')",
                "required": True,
            }
        return spec

    def default(self, ftype, text, i):
        try:
            if ftype == "integer":
                return int(float(text))
            if ftype == "decimal":
                return float(text)
        except ValueError:
            self.err("survey", i, "default", "默认值不是数字", "the default is not a number")
            return text
        if ftype == "yes_no":
            return text.strip().lower() in TRUE_WORDS
        if ftype == "select_many":
            return text.split()
        return text

    def top(self, fields) -> dict | None:
        s = self.settings
        form_id = self.form_id()
        try:
            version = int(float(s.get("version") or "1"))
        except ValueError:
            self.err(
                "settings",
                2,
                "version",
                "version 必须是正整数",
                "version must be a positive integer",
            )
            version = 1
        for column in s:
            if _split(column)[0] not in SETTINGS_COLUMNS:
                self.err("settings", 2, column, "这一设置暂不支持", "this setting is not supported")
        title = self.texts(s, "title", "settings", 2) or self.texts(s, "form_title", "settings", 2)
        if title is None and form_id:
            stem = self.stem or form_id
            title = {"zh": stem, "en": stem}
            self.notice(
                "settings",
                2,
                "form_title",
                f"没有表单标题，用 {stem} 作标题",
                f"no form title: {stem} is the title",
            )
        definition = {
            "id": form_id,
            "version": version,
            "target": s.get("target") or "facility",
            "title": title,
        }
        description = self.texts(s, "description", "settings", 2)
        if description:
            definition["description"] = description
        definition["fields"] = fields
        try:
            updates = json.loads(s["updates"]) if s.get("updates") else {}
        except ValueError:
            self.err(
                "settings",
                2,
                "updates",
                "updates 必须是 JSON 对象",
                "updates must be a JSON object",
            )
            updates = {}
        definition["updates"] = updates
        return definition

    def form_id(self) -> str | None:
        """The settings' form_id (else the file's name, as ODK does) made into our id: lowercase
        letters, digits and _ ("Toilet-Survey" -> "toilet_survey"), with a notice when changed."""
        given = str(self.settings.get("form_id") or "").strip()
        raw = given or self.stem
        form_id = re.sub(r"[^a-z0-9_]+", "_", raw.lower()).strip("_")[:60]
        if form_id and not form_id[0].isalpha():
            form_id = f"form_{form_id}"
        if not form_id:
            self.err(
                "settings",
                2,
                "form_id",
                "缺少 form_id（表单编号，用字母、数字和 _，如 sewage）",
                "form_id is missing (letters, digits and _, e.g. sewage)",
            )
            return None
        if form_id != raw or not given:
            zh, en = ("form_id", "form_id") if given else ("文件名", "file name")
            self.notice(
                "settings",
                2,
                "form_id",
                f"表单编号按{zh} {raw} 记为 {form_id}（只用小写字母、数字和 _）",
                f"the form id is {form_id}, from the {en} {raw}",
            )
        return form_id


def extra_other(words) -> bool:
    return words[-1:] == ["or_other"]


def _zip_errors(data: bytes) -> list[XlsError]:
    def e(zh, en):
        return [XlsError("workbook", None, None, zh, en)]

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return e("不是 Excel 工作簿（.xlsx）", "not an Excel workbook (.xlsx)")
    if len(infos) > MAX_ENTRIES:
        return e(
            f"工作簿内部文件太多（{len(infos)} 个，上限 {MAX_ENTRIES}）",
            f"too many entries in the workbook ({len(infos)}, limit {MAX_ENTRIES})",
        )
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED:
        return e(
            f"工作簿解压后太大（{total // 1048576} MB，上限 {MAX_UNCOMPRESSED // 1048576} MB）",
            f"the workbook is too large uncompressed ({total // 1048576} MB, "
            f"limit {MAX_UNCOMPRESSED // 1048576} MB)",
        )
    return []


def _formula_errors(data: bytes) -> list[XlsError]:
    import openpyxl

    out = []
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        for ws in wb.worksheets:
            for r, cells in enumerate(ws.iter_rows(), start=1):
                for cell in cells:
                    if getattr(cell, "data_type", None) == "f":
                        out.append(
                            XlsError(
                                ws.title,
                                r,
                                getattr(cell, "column_letter", None),
                                "单元格是公式，请改为数值或文字",
                                "the cell is a formula; enter a value instead",
                            )
                        )
    finally:
        wb.close()
    return out


_FIELD_RE = re.compile(r"field '([A-Za-z0-9_]+)'")
_INDEX_RE = re.compile(r"fields\[(\d+)\]")
_EXPR_COLUMNS = (
    "relevant",
    "constraint",
    "calculation",
    "required_message",
    "required",
    "default",
    "choice_filter",
    "repeat_count",
    "min_count",
    "max_count",
    "choice",
)


def _all_names(specs) -> list:
    out = []
    for f in specs:
        out.append(f.get("name") if isinstance(f, dict) else None)
        if isinstance(f, dict) and isinstance(f.get("fields"), list):
            out.extend(_all_names(f["fields"]))
    return out


def import_xlsform(data: bytes, filename: str | None = None) -> ImportResult:
    """Translate an XLSForm workbook (bytes) into a form definition, or list every error.
    `filename` (the uploaded file's name) gives the form id when the settings sheet has none,
    as in ODK."""
    errors = _zip_errors(data)
    if errors:
        return ImportResult(None, errors)
    try:
        errors = _formula_errors(data)
        from pyxform.xls2json_backends import xlsx_to_dict

        book = xlsx_to_dict(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any reader failure is "not a workbook we can read"
        return ImportResult(
            None,
            [
                *errors,
                XlsError(
                    "workbook", None, None, "无法读取工作簿", f"the workbook cannot be read: {exc}"
                ),
            ],
        )
    t = _Translator(book, filename)
    definition = t.translate()
    errors += t.errors
    if definition is not None and not errors:
        from forms.compiler import DefinitionError, compile_form

        try:
            compile_form(json.loads(json.dumps(definition)))
        except DefinitionError as exc:
            names = [f.get("name") for f in definition["fields"]]
            for problem in exc.problems:
                m = _FIELD_RE.search(problem)
                n = _INDEX_RE.search(problem) if not m else None
                name = m.group(1) if m else names[int(n.group(1))] if n else None
                row = t.rows.get(name) if name else None
                column = next((c for c in _EXPR_COLUMNS if f" {c}" in problem), None)
                errors.append(
                    XlsError(
                        "survey" if row else "settings",
                        row,
                        column if row else None,
                        f"表单检查未通过：{problem}",
                        problem,
                    )
                )
    return ImportResult(definition, errors, t.notices)


# -- export --------------------------------------------------------------------------------------


def _choice_properties(specs) -> list[str]:
    """Every choice property name of the form, in first-seen order (the choices sheet's extra
    columns)."""
    out: dict[str, None] = {}
    for f in specs:
        for c in f.get("choices", ()):
            out.update(dict.fromkeys(c.get("properties", {})))
        out.update(dict.fromkeys(_choice_properties(f.get("fields", ()))))
    return list(out)


def export_xlsform(definition: dict) -> bytes:
    """The definition as an XLSForm workbook (bytes)."""
    import openpyxl

    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    cols = [
        "type",
        "name",
        f"label::{ZH}",
        f"label::{EN}",
        f"hint::{ZH}",
        f"hint::{EN}",
        "relevant",
        "required",
        f"required_message::{ZH}",
        f"required_message::{EN}",
        "constraint",
        f"constraint_message::{ZH}",
        f"constraint_message::{EN}",
        "calculation",
        "names_where",
        "default",
        "read_only",
        "appearance",
        "choice_filter",
        "repeat_count",
        "min_count",
        "max_count",
    ]
    survey.append(cols)
    choices = wb.create_sheet("choices")
    properties = _choice_properties(definition["fields"])
    choices.append(["list_name", "name", f"label::{ZH}", f"label::{EN}", *properties])
    need_yes_no = False

    def emit(f: dict) -> None:
        nonlocal need_yes_no
        ftype = f["type"]
        row = dict.fromkeys(cols, None)
        row["name"] = f["name"]
        if ftype == "yes_no":
            row["type"], need_yes_no = f"select_one {YES_NO_LIST}", True
        elif ftype in ("select_one", "select_many"):
            kind = "select_one" if ftype == "select_one" else "select_multiple"
            row["type"] = f"{kind} {f['name']}"
            for c in f["choices"]:
                props = c.get("properties", {})
                choices.append(
                    [f["name"], c["value"], c["label"]["zh"], c["label"]["en"]]
                    + [props.get(p) for p in properties]
                )
        elif ftype == "repeat":
            row["type"] = "begin repeat"
        else:
            row["type"] = {"photo": "image"}.get(ftype, ftype)
        for key in ("label", "hint", "constraint_message", "required_message"):
            if key in f:
                row[f"{key}::{ZH}"], row[f"{key}::{EN}"] = f[key]["zh"], f[key]["en"]
        for key in (
            "relevant",
            "constraint",
            "calculation",
            "appearance",
            "choice_filter",
            "repeat_count",
            "min_count",
            "max_count",
        ):
            row[key] = f.get(key)
        if "required" in f:
            row["required"] = {True: "yes", False: "no"}.get(f["required"], f["required"])
        if f.get("read_only"):
            row["read_only"] = "yes"
        if "names_where" in f:
            row["names_where"] = json.dumps(f["names_where"], ensure_ascii=False)
        if "default" in f:
            d = f["default"]
            row["default"] = (
                ("yes" if d else "no")
                if isinstance(d, bool)
                else " ".join(d)
                if isinstance(d, list)
                else d
            )
        survey.append([row[c] for c in cols])
        if ftype == "repeat":
            for inner in f["fields"]:
                emit(inner)
            survey.append(["end repeat", f["name"]] + [None] * (len(cols) - 2))

    for f in definition["fields"]:
        emit(f)
    if need_yes_no:
        choices.append([YES_NO_LIST, "yes", "是", "Yes"])
        choices.append([YES_NO_LIST, "no", "否", "No"])
    settings = wb.create_sheet("settings")
    head = [
        "form_id",
        "version",
        "form_title",
        f"title::{ZH}",
        f"title::{EN}",
        "target",
        "default_language",
        "updates",
    ]
    values = [
        definition["id"],
        definition["version"],
        definition["title"]["zh"],
        definition["title"]["zh"],
        definition["title"]["en"],
        definition["target"],
        ZH,
        json.dumps(definition.get("updates", {}), ensure_ascii=False),
    ]
    if "description" in definition:
        head += [f"description::{ZH}", f"description::{EN}"]
        values += [definition["description"]["zh"], definition["description"]["en"]]
    settings.append(head)
    settings.append(values)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
