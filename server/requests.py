"""Reading request bodies safely: JSON objects only, bounded in size and depth, holdable values.

Python's json module parses text the server cannot hold: lone UTF-16 surrogates (an emoji cut
in half, "\\ud83d") make SQLite and the JSON encoder raise; integers beyond 64 bits overflow
SQLite; nesting deeper than about 1,000 makes the parser itself raise RecursionError. Each of
these used to be a 500. Here such a value is replaced by an `Unusable` marker carrying a stable
error code, so a push can refuse just the item holding it (server/push.py) and every other
endpoint answers 400 with that code. Nothing is silently altered: a marked value is refused,
never stored in a mended form.
"""

import json
import re
import secrets

from flask import current_app, request

from .errors import ApiError

MAX_DEPTH = 64  # objects and arrays; a push item needs about 7
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what SQLite holds


class Unusable:
    """A value of a request body the server cannot hold; `code` says why."""

    __slots__ = ("code",)

    def __init__(self, code: str):
        self.code = code

    def __repr__(self) -> str:
        return f"Unusable({self.code!r})"


TOO_DEEP = Unusable("too_deep")
BAD_TEXT = Unusable("bad_text")
BAD_NUMBER = Unusable("bad_number")

MESSAGES = {
    "too_deep": f"内容嵌套层数过多（最多 {MAX_DEPTH} 层）",
    "bad_text": "内容含有无法识别的字符（可能是被截断的表情符号），请删除后重试",
    "bad_number": "数字超出范围",
}


def _bad_text(text: str) -> bool:
    """True for text holding a lone surrogate, which is not Unicode and cannot be stored."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _int(literal: str):
    if len(literal) > 20:  # also keeps int() away from 5,000-digit literals
        return BAD_NUMBER
    value = int(literal)
    return value if INT_MIN <= value <= INT_MAX else BAD_NUMBER


def _float(literal: str):
    value = float(literal)
    return value if value - value == 0 else BAD_NUMBER  # inf and nan are not JSON


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# A JSON string, or a run of opening or of closing brackets: what depth counting needs.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+')


def _cut_deep(text: str, marker: str) -> str:
    """The text with each array or object nested deeper than MAX_DEPTH replaced by `marker`.

    For bodies too deep for json.loads (it recurses): brackets are counted outside strings,
    a run at a time, without recursion. What is cut out is refused as `too_deep` anyway, so it
    does not matter whether it was well-formed.
    """
    out, depth, start, last = [], 0, None, 0
    for match in _TOKENS.finditer(text):
        run = match.group()
        if run[0] == '"':
            continue
        if run[0] in "[{":
            if depth <= MAX_DEPTH < depth + len(run) and start is None:
                start = match.start() + MAX_DEPTH - depth
            depth += len(run)
        else:
            if start is not None and depth - len(run) <= MAX_DEPTH:
                end = match.start() + depth - MAX_DEPTH  # just after the closing bracket
                out += (text[last:start], marker)
                last, start = end, None
            depth -= len(run)
    out.append(text[last:])
    return "".join(out)


def _mark(value, marker: str | None, check_text: bool) -> tuple[object, set[str]]:
    """Replace lone-surrogate text (values and keys), containers deeper than MAX_DEPTH and
    `marker` strings by markers; a dict with a bad key becomes BAD_TEXT as a whole.

    Iterative, so any depth is safe; returns the value and the codes of the markers in it.
    """
    found: set[str] = set()
    holder = [value]
    todo: list = [(holder, 0, None, None)]  # (container, depth, its parent, its key there)
    while todo:
        container, depth, parent, at = todo.pop()
        if type(container) is dict:
            if check_text and any(_bad_text(k) for k in container):
                parent[at] = BAD_TEXT
                found.add(BAD_TEXT.code)
                continue
            pairs = container.items()
        else:
            pairs = enumerate(container)
        for key, v in pairs:
            kind = type(v)
            if kind is dict or kind is list:
                if depth < MAX_DEPTH:
                    todo.append((v, depth + 1, container, key))
                    continue
                v = container[key] = TOO_DEEP
            elif kind is str and (v == marker or (check_text and _bad_text(v))):
                v = container[key] = TOO_DEEP if v == marker else BAD_TEXT
            if type(v) is Unusable:
                found.add(v.code)
    return holder[0], found


# A JSON escape of a UTF-16 surrogate: without one, the text cannot hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(data: bytes) -> tuple[object, set[str]]:
    """Parse a JSON body; ValueError when it is not JSON at all (or not UTF-8)."""
    text = data.decode("utf-8-sig")  # UTF-8 itself cannot carry a surrogate
    check_text = _SURROGATE_ESCAPE.search(text) is not None
    hooks = {"parse_int": _int, "parse_float": _float, "parse_constant": _refuse_constant}
    try:
        return _mark(json.loads(text, **hooks), None, check_text)
    except RecursionError:
        pass
    marker = f"\0too_deep:{secrets.token_hex(16)}"  # a string no client can guess
    try:
        value = json.loads(_cut_deep(text, json.dumps(marker)), **hooks)
    except RecursionError:  # brackets that never close
        raise ValueError("JSON nested too deep") from None
    return _mark(value, marker, check_text)


def unusable_code(value) -> str | None:
    """The code of the first marker inside an already parsed value, if any."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, Unusable):
            return v.code
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return None


def json_body(*, keep_unusable: bool = False) -> dict:
    """The request's JSON object, or a clear 400/413/415.

    With `keep_unusable` values the server cannot hold stay in as `Unusable` markers for the
    caller to refuse one by one (a push refuses only the items holding them); otherwise any of
    them is a 400 with its code (`too_deep`, `bad_text`, `bad_number`).
    """
    limit = current_app.config["MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"请求内容超过 {limit // 1024 // 1024} MB")
    if not request.is_json:
        raise ApiError(415, "json_required", "请求内容必须是 JSON (application/json)")
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"请求内容超过 {limit // 1024 // 1024} MB")
    try:
        body, found = parse_json(data)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, "bad_json", "JSON 格式不正确") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "请求内容必须是 JSON 对象")
    if found and not keep_unusable:
        code = sorted(found)[0]
        raise ApiError(400, code, MESSAGES[code])
    return body
