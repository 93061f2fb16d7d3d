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
from json.decoder import scanstring

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


def _object(pairs):
    if any(_bad_text(k) for k, _ in pairs):
        return BAD_TEXT
    return dict(pairs)


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def _skip(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def _key(text: str, pos: int) -> tuple[str, int]:
    """An object key and the ':' after it; returns the position of the member's value."""
    if text[pos : pos + 1] != '"':
        raise ValueError(f"expected a key at {pos}")
    key, pos = scanstring(text, pos + 1, True)
    pos = _skip(text, pos)
    if text[pos : pos + 1] != ":":
        raise ValueError(f"expected ':' at {pos}")
    return key, _skip(text, pos + 1)


def _scalar(text: str, pos: int):
    if text[pos : pos + 1] == '"':
        return scanstring(text, pos + 1, True)
    for literal, value in _LITERALS.items():
        if text.startswith(literal, pos):
            return value, pos + len(literal)
    match = _NUMBER.match(text, pos)
    if match is None or match.end() == pos:
        raise ValueError(f"expected a value at {pos}")
    number = match.group()
    return (_float if match.group(1) or match.group(2) else _int)(number), match.end()


def _parse_deep(text: str):
    """json.loads without recursion, for bodies nested too deep for it; the same values."""
    stack: list = []  # open containers, outermost first: ("[", items) or ("{", [pairs, key])
    pos = _skip(text, 0)
    while True:
        opener = text[pos : pos + 1]
        if opener in ("{", "["):
            closer = "}" if opener == "{" else "]"
            pos = _skip(text, pos + 1)
            if text[pos : pos + 1] == closer:
                value, pos = (_object([]) if opener == "{" else []), pos + 1
            elif opener == "[":
                stack.append(("[", []))
                continue
            else:
                key, pos = _key(text, pos)
                stack.append(("{", [[], key]))
                continue
        else:
            value, pos = _scalar(text, pos)
        while True:  # a value is complete: add it to its container, closing what ends here
            pos = _skip(text, pos)
            if not stack:
                if pos != len(text):
                    raise ValueError(f"extra data at {pos}")
                return value
            kind, top = stack[-1]
            if kind == "{":
                top[0].append((top[1], value))
            else:
                top.append(value)
            char = text[pos : pos + 1]
            if char == ",":
                pos = _skip(text, pos + 1)
                if kind == "{":
                    top[1], pos = _key(text, pos)
                break
            if char != ("}" if kind == "{" else "]"):
                raise ValueError(f"expected ',' or a closing bracket at {pos}")
            stack.pop()
            value, pos = (_object(top[0]) if kind == "{" else top), pos + 1


def _mark(value) -> tuple[object, set[str]]:
    """Replace lone-surrogate text and containers deeper than MAX_DEPTH by markers.

    Iterative, so any depth is safe; returns the value and the codes of the markers in it.
    """
    found: set[str] = set()

    def check(v, depth: int):
        if isinstance(v, str) and _bad_text(v):
            v = BAD_TEXT
        elif isinstance(v, dict | list) and depth > MAX_DEPTH:
            v = TOO_DEEP
        elif isinstance(v, dict | list):
            todo.append((v, depth))
        if isinstance(v, Unusable):
            found.add(v.code)
        return v

    todo: list = []
    value = check(value, 1)
    while todo:
        container, depth = todo.pop()
        keys = container.keys() if isinstance(container, dict) else range(len(container))
        for k in keys:
            container[k] = check(container[k], depth + 1)
    return value, found


def parse_json(data: bytes) -> tuple[object, set[str]]:
    """Parse a JSON body; ValueError when it is not JSON at all (or not UTF-8)."""
    text = data.decode("utf-8-sig")
    hooks = {"parse_int": _int, "parse_float": _float, "parse_constant": _refuse_constant}
    try:
        value = json.loads(text, object_pairs_hook=_object, **hooks)
    except RecursionError:
        value = _parse_deep(text)
    return _mark(value)


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
