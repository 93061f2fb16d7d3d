"""Form expressions: the small, safe subset of XLSForm/XPath used for relevance, constraints,
conditional requirements and calculations.

Pure functions, no eval, no I/O. The semantics are specified in docs/EXPRESSIONS.md and pinned by
forms/expr_vectors.json, which the PWA's JavaScript twin must pass as well. Internally a value is
always one of: None (no answer; the empty string is the same value), bool, a finite float, or a
non-empty str. Select-many answers are seen as their space-separated string, as in XLSForm.
A repeat's values come in as a Nodeset (built by the caller, never by the evaluator): functions
over node-sets (count, sum, join...) read its items, everything else reads its first item.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import math
import random as _random
import re
import uuid as _uuid_module
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ExprError",
    "Expr",
    "Nodeset",
    "parse",
    "references",
    "bare_names",
    "uses_position",
    "evaluate",
    "truthy",
    "FUNCTIONS",
]

MAX_DEPTH = 100  # deepest allowed syntax tree; keeps both implementations clear of stack limits


class ExprError(ValueError):
    """A malformed expression (or a call that cannot be answered); the message says where."""

    def __init__(self, message: str, position: int | None = None):
        if position is not None:
            message = f"{message} at column {position + 1}"
        super().__init__(message)
        self.position = position


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Str:
    value: str | None  # the literal '' is the empty value


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Current:
    pass


@dataclass(frozen=True)
class Name:
    """A bare name: in a choice_filter, the choice's property of that name (`name`: its value)."""

    name: str


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]


Expr = Num | Str | Ref | Current | Name | Neg | Binary | Call


@dataclass(frozen=True)
class Nodeset:
    """The values of one field across a repeat's instances (or the instance objects themselves).

    The caller builds these into `answers`; the evaluator never builds one from a definition.
    """

    items: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))


# name -> (fewest, most) arguments; None means any number
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "if": (3, 3),
    "selected": (2, 2),
    "count-selected": (1, 1),
    "string-length": (1, 1),
    "today": (0, 0),
    "true": (0, 0),
    "false": (0, 0),
    "not": (1, 1),
    "number": (1, 1),
    "int": (1, 1),
    "round": (1, 2),
    "coalesce": (2, 2),
    "concat": (0, None),
    "regex": (2, 2),
    # text
    "contains": (2, 2),
    "starts-with": (2, 2),
    "ends-with": (2, 2),
    "substr": (2, 3),
    "substring-before": (2, 2),
    "substring-after": (2, 2),
    "translate": (3, 3),
    "normalize-space": (1, 1),
    "string": (1, 1),
    "join": (2, None),
    # maths
    "pow": (2, 2),
    "abs": (1, 1),
    "sqrt": (1, 1),
    "log": (1, 1),
    "log10": (1, 1),
    "exp": (1, 1),
    "pi": (0, 0),
    "ceiling": (1, 1),
    "floor": (1, 1),
    # conversion and choices
    "boolean": (1, 1),
    "boolean-from-string": (1, 1),
    "selected-at": (2, 2),
    # dates
    "now": (0, 0),
    "date": (1, 1),
    "decimal-date-time": (1, 1),
    "format-date": (2, 2),
    "format-date-time": (2, 2),
    # lists (select-many items) and other
    "count-non-empty": (1, 1),
    "sum": (1, None),
    "max": (1, None),
    "min": (1, None),
    "checklist": (2, None),
    "weighted-checklist": (2, None),
    "once": (1, 1),
    "random": (0, 0),
    "uuid": (0, 1),
    # repeats (node-sets)
    "count": (1, 1),
    "indexed-repeat": (3, 3),
    "position": (1, 1),  # only as position(..)
    # other
    "digest": (2, 3),
    "distance": (1, None),
    "area": (1, 1),
}

# functions of XLSForm's library refused at parse time, with the reason (docs/EXPRESSIONS.md)
REFUSED: dict[str, str] = {
    "pulldata": "pulldata() reads a CSV file attached to the form; forms here have no "
    "attachments, so write the values as choices (with choice_filter) instead",
}

# binding power of binary operators, XPath order; unary minus binds tighter than all of them
_BINARY = {
    "or": 1,
    "and": 2,
    "=": 3,
    "!=": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "div": 6,
    "mod": 6,
}
_UNARY_BP = 7

# ---------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
    |(?P<ref>\$\{[A-Za-z_][A-Za-z0-9_.-]*\})
    |(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)
    |(?P<str>'[^']*'|"[^"]*")
    |(?P<name>[A-Za-z_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)
    |(?P<op>!=|<=|>=|\.\.|[=<>+\-*(),.])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # ref, num, str, name, op, end
    text: str
    pos: int


def _tokenize(source: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            ch = source[pos]
            if ch in "'\"":
                raise ExprError("unclosed string", pos)
            if ch == "$":
                raise ExprError("bad field reference, expected ${name}", pos)
            raise ExprError(f"unexpected character {ch!r}", pos)
        if m.lastgroup != "ws":
            tokens.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(source)))
    return tokens


# ---------------------------------------------------------------- parser (Pratt)


class _Parser:
    def __init__(self, source: str):
        self.tokens = _tokenize(source)
        self.i = 0
        self.level = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op", "end"):
            raise ExprError(f"expected {text!r} but found {_describe(tok)}", tok.pos)

    def expression(self, min_bp: int = 0) -> tuple[Expr, int]:
        """Parse operators binding tighter than min_bp; return the node and its tree depth."""
        self.level += 1
        if self.level > MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {MAX_DEPTH}", self.peek().pos)
        left, depth = self.prefix()
        while True:
            tok = self.peek()
            op = tok.text if tok.kind in ("op", "name") and tok.text in _BINARY else None
            if op is None or _BINARY[op] <= min_bp:
                break
            self.take()
            right, right_depth = self.expression(_BINARY[op])
            left, depth = Binary(op, left, right), _deeper(max(depth, right_depth), tok)
        self.level -= 1
        return left, depth

    def prefix(self) -> tuple[Expr, int]:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise ExprError("number too large", tok.pos)
            return Num(value), 1
        if tok.kind == "str":
            return Str(tok.text[1:-1] or None), 1
        if tok.kind == "ref":
            return Ref(tok.text[2:-1]), 1
        if tok.kind == "op" and tok.text == ".":
            return Current(), 1
        if tok.kind == "op" and tok.text == "-":
            operand, depth = self.expression(_UNARY_BP)
            return Neg(operand), _deeper(depth, tok)
        if tok.kind == "op" and tok.text == "(":
            inner, depth = self.expression(0)
            self.expect(")")
            return inner, _deeper(depth, tok)
        if tok.kind == "name":
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(tok)
            if tok.text in _BINARY:
                raise ExprError(f"operator {tok.text!r} is missing its left operand", tok.pos)
            return Name(tok.text), 1
        if tok.kind == "op" and tok.text == "..":
            raise ExprError("paths are not supported; '..' only in position(..)", tok.pos)
        if tok.kind == "end":
            raise ExprError("unexpected end of expression", tok.pos)
        raise ExprError(f"unexpected {_describe(tok)}", tok.pos)

    def call(self, name: _Token) -> tuple[Expr, int]:
        if name.text in REFUSED:
            raise ExprError(REFUSED[name.text], name.pos)
        if name.text not in FUNCTIONS:
            raise ExprError(f"unknown function {name.text}()", name.pos)
        self.take()  # (
        if name.text == "position":  # XPath's position(..): the number of the repeat instance
            self.expect("..")
            self.expect(")")
            return Call("position", ()), 1
        args, depth = [], 0
        if self.peek().text != ")" or self.peek().kind != "op":
            while True:
                arg, arg_depth = self.expression(0)
                args.append(arg)
                depth = max(depth, arg_depth)
                if self.peek().text == "," and self.peek().kind == "op":
                    self.take()
                    continue
                break
        self.expect(")")
        fewest, most = FUNCTIONS[name.text]
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
            if most is None:
                wanted = f"at least {fewest}"
            raise ExprError(f"{name.text}() takes {wanted} arguments, got {len(args)}", name.pos)
        if name.text == "weighted-checklist" and len(args) % 2:
            raise ExprError(
                "weighted-checklist() takes min, max, then value/weight pairs", name.pos
            )
        if name.text == "digest":
            for arg, known, what in zip(
                args[1:], (_DIGESTS, _ENCODINGS), ("algorithm", "encoding"), strict=False
            ):
                if isinstance(arg, Str) and (arg.value or "").lower() not in known:
                    raise ExprError(f"digest() has no {what} {arg.value or ''!r}", name.pos)
        if name.text == "regex":
            if not isinstance(args[1], Str):
                raise ExprError("regex() needs a string literal as its pattern", name.pos)
            try:
                _compile_regex(args[1].value or "")
            except _RegexError as e:
                raise ExprError(f"bad regex pattern ({e.args[0]})", name.pos) from None
        return Call(name.text, tuple(args)), _deeper(depth, name)


def _deeper(depth: int, tok: _Token) -> int:
    if depth + 1 > MAX_DEPTH:
        raise ExprError(f"expression nested deeper than {MAX_DEPTH}", tok.pos)
    return depth + 1


def _describe(tok: _Token) -> str:
    return "end of expression" if tok.kind == "end" else repr(tok.text)


@functools.lru_cache(maxsize=2048)
def parse(source: str) -> Expr:
    """Parse once and cache, so forms re-evaluated on every keystroke stay cheap."""
    if not isinstance(source, str):
        raise ExprError("expression must be a string")
    parser = _Parser(source)
    if parser.peek().kind == "end":
        raise ExprError("empty expression", 0)
    node, _ = parser.expression(0)
    tok = parser.peek()
    if tok.kind != "end":
        raise ExprError(f"unexpected {_describe(tok)} after a complete expression", tok.pos)
    return node


def _nodes(source: str) -> list[Expr]:
    """Every node of an expression's tree."""
    found, stack = [], [parse(source)]
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, Neg):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack += [node.left, node.right]
        elif isinstance(node, Call):
            stack += node.args
    return found


@functools.lru_cache(maxsize=2048)
def references(source: str) -> frozenset[str]:
    """Fields an expression reads, so callers know what to re-evaluate when an answer changes."""
    return frozenset(node.name for node in _nodes(source) if isinstance(node, Ref))


@functools.lru_cache(maxsize=2048)
def bare_names(source: str) -> frozenset[str]:
    """Bare names (choice properties in a choice_filter) an expression reads."""
    return frozenset(node.name for node in _nodes(source) if isinstance(node, Name))


@functools.lru_cache(maxsize=2048)
def uses_position(source: str) -> bool:
    """True if the expression calls position(..) (it then needs the instance number)."""
    return any(isinstance(n, Call) and n.name == "position" for n in _nodes(source))


# ---------------------------------------------------------------- values

_NUMERIC = re.compile(r"[ \t\r\n]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*")
_SPLIT = re.compile(r"[ \t\r\n]+")
_YES_NO = {"yes": True, "true": True, "no": False, "false": False}


def _load(value: Any) -> Any:
    """Normalise an answer of any type to an internal value; never raises."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Nodeset):  # outside node-set functions: its first item
        return _load(value.items[0]) if value.items else None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return value or None
    if isinstance(value, list | tuple):
        items = [_item_text(item) for item in value]
        return " ".join(item for item in items if item) or None
    if isinstance(value, dict):
        return "object" if value else None
    if isinstance(value, datetime.date):  # Python convenience only; JSON answers are strings
        return value.isoformat()
    return None


def _item_text(item: Any) -> str:
    if isinstance(item, list | tuple | dict):
        return "object" if item else ""
    return _text(_load(item))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number_text(value)
    return value


def _number_text(x: float) -> str:
    """Format like JavaScript's Number.prototype.toString, so both twins print the same."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    m = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))?(?:e([+-][0-9]+))?", repr(abs(x)))
    whole, frac, exp = m.group(1), m.group(2) or "", int(m.group(3) or 0)
    digits, point = whole + frac, len(whole) + exp
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if _NUMERIC.fullmatch(value):
        return _finite(float(value))
    parts = _date_parts(value)
    return None if parts is None else _days(parts)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0
    return value is not None


def truthy(value: Any) -> bool:
    """XPath boolean() of a value: decides relevance, constraints and required-if."""
    return _bool(_load(value))


def _out(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= 2**53:
            return int(value)
        return value
    return value


# ---------------------------------------------------------------- comparisons and arithmetic


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, bool) and isinstance(b, bool):
            return a == b
        flag, other = (a, b) if isinstance(a, bool) else (b, a)
        if isinstance(other, float):
            return (1.0 if flag else 0.0) == other
        return _YES_NO.get(other) is flag
    if isinstance(a, float) or isinstance(b, float):
        x, y = _number(a), _number(b)
        return x is not None and y is not None and x == y
    return a == b


def _order(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, str) and isinstance(b, str):
        x, y = _utf16(a), _utf16(b)
    else:
        x, y = _number(a), _number(b)
        if x is None or y is None:
            return False
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _utf16(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")  # JavaScript compares UTF-16 code units


def _arithmetic(op: str, a: Any, b: Any) -> float | None:
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return None
    if op == "+":
        return _finite(x + y)
    if op == "-":
        return _finite(x - y)
    if op == "*":
        return _finite(x * y)
    if y == 0:
        return None
    return _finite(x / y if op == "div" else math.fmod(x, y))


def _round(x: float | None, digits: float | None) -> float | None:
    """Round half away from zero, with the same float steps the JavaScript twin takes."""
    if x is None or digits is None:
        return None
    d = max(-308, min(308, math.trunc(digits)))
    scale = float(f"1e{abs(d)}")
    scaled = abs(x) * scale if d >= 0 else abs(x) / scale
    if not math.isfinite(scaled) or scaled >= 2**52:
        return x
    whole = math.floor(scaled)
    if scaled - whole >= 0.5:
        whole += 1
    result = whole / scale if d >= 0 else whole * scale
    return _finite(math.copysign(result, x) if result else 0.0)


def _tokens(value: Any) -> list[str]:
    return [t for t in _SPLIT.split(_text(value)) if t]


def _scalar(value: Any) -> Any:
    """A node-set outside the node-set functions reads as its first item (XPath's string value)."""
    return _load(value) if isinstance(value, Nodeset) else value


def _items(value: Any) -> list[Any]:
    """A node-set's items as values (empty ones included); any other value is one item."""
    return [_load(item) for item in value.items] if isinstance(value, Nodeset) else [value]


# ---------------------------------------------------------------- evaluator


@dataclass(frozen=True)
class _Context:
    answers: Mapping[str, Any]
    current: Any
    today: Any
    now: Any = None
    position: Any = None
    choice: Mapping[str, Any] | None = None
    raw_current: Any = None


def evaluate(
    source: str | Expr,
    answers: Mapping[str, Any],
    *,
    current: Any = None,
    today: datetime.date,
    now: datetime.datetime | str | None = None,
    position: int | None = None,
    choice: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate to a JSON value (None, bool, int, float or str); `.` is `current`.

    `now` (an aware datetime or ISO text with offset) is needed only if now() is reached;
    `position` (the 1-based repeat instance) only by position(..); `choice` (a choice's
    properties plus `name`) only by bare names, as in a choice_filter.
    """
    node = parse(source) if isinstance(source, str) else source
    ctx = _Context(answers, _load(current), today, now, position, choice, current)
    return _out(_scalar(_eval(node, ctx)))


def _eval(node: Expr, ctx: _Context) -> Any:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Ref):
        value = ctx.answers.get(node.name)
        return value if isinstance(value, Nodeset) else _load(value)
    if isinstance(node, Current):
        return ctx.current
    if isinstance(node, Name):
        if ctx.choice is None:
            raise ExprError(
                f"bare name {node.name!r} reads a choice property, only in a choice_filter: "
                f"write ${{{node.name}}} for a field, '{node.name}' for text or "
                f"{node.name}() for a function"
            )
        return _load(ctx.choice.get(node.name))
    if isinstance(node, Neg):
        x = _number(_scalar(_eval(node.operand, ctx)))
        return None if x is None else -x
    if isinstance(node, Binary):
        op = node.op
        left = _scalar(_eval(node.left, ctx))
        if op == "and":
            return _bool(left) and _bool(_scalar(_eval(node.right, ctx)))
        if op == "or":
            return _bool(left) or _bool(_scalar(_eval(node.right, ctx)))
        right = _scalar(_eval(node.right, ctx))
        if op == "=":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if op in ("<", "<=", ">", ">="):
            return _order(op, left, right)
        return _arithmetic(op, left, right)
    if isinstance(node, Call):
        return _call(node, ctx)
    raise ExprError(f"not an expression: {node!r}")


def _call(node: Call, ctx: _Context) -> Any:
    name, args = node.name, node.args
    if name == "if":
        return _eval(args[1] if _bool(_scalar(_eval(args[0], ctx))) else args[2], ctx)
    if name == "coalesce":
        first = _scalar(_eval(args[0], ctx))
        return first if first is not None else _scalar(_eval(args[1], ctx))
    if name == "today":
        today = ctx.today
        if not isinstance(today, datetime.date):
            raise ExprError("today() needs evaluate(..., today=<date>)")
        return datetime.date(today.year, today.month, today.day).isoformat()
    if name == "now":
        now = ctx.now.isoformat() if isinstance(ctx.now, datetime.datetime) else ctx.now
        if not isinstance(now, str) or _date_parts(now) is None or "T" not in now:
            raise ExprError("now() needs evaluate(..., now=<date-time>)")
        return now
    if name == "once":  # the answer already there, else x
        return ctx.current if ctx.current is not None else _scalar(_eval(args[0], ctx))
    if name in ("distance", "area"):  # geopoint objects are read as they are, not as text
        return _geo(name, [_raw(arg, ctx) for arg in args])
    if name == "position":
        position = _number(_load(ctx.position))
        if position is None:
            raise ExprError("position(..) is only defined inside a repeat instance")
        return position
    values = [_eval(arg, ctx) for arg in args]
    if name in _NODESET_FUNCTIONS:
        return _NODESET_FUNCTIONS[name](values, args)
    values = [_scalar(v) for v in values]
    if name == "true":
        return True
    if name == "false":
        return False
    if name == "not":
        return not _bool(values[0])
    if name == "selected":
        wanted = _text(values[1]).strip(" \t\r\n")  # as Enketo and JavaRosa: trimmed
        return bool(wanted) and wanted in _tokens(values[0])
    if name == "count-selected":
        return float(len(_tokens(values[0])))
    if name == "string-length":
        return float(len(_text(values[0])))
    if name == "number":
        return _number(values[0])
    if name == "int":
        x = _number(values[0])
        return None if x is None else float(math.trunc(x))
    if name == "round":
        return _round(_number(values[0]), _number(values[1]) if len(values) > 1 else 0.0)
    if name == "concat":
        return "".join(_text(v) for v in values) or None
    if name in _TEXT_FUNCTIONS:
        result = _TEXT_FUNCTIONS[name](*[_text(v) for v in values])
        return result if isinstance(result, bool) else result or None
    if name == "substr":
        return _substr(_text(values[0]), values[1:])
    if name in _MATH_FUNCTIONS:
        return _math(_MATH_FUNCTIONS[name], [_number(v) for v in values])
    if name == "pi":
        return math.pi
    if name == "boolean":
        return _bool(values[0])
    if name == "boolean-from-string":
        return _text(values[0]) in ("true", "1")
    if name == "selected-at":
        items, n = _tokens(values[0]), _number(values[1])
        if n is None or not 0 <= n < len(items):
            return None
        return items[math.trunc(n)]
    if name == "checklist":
        return _within(values[:2], float(sum(_bool(v) for v in values[2:])))
    if name == "weighted-checklist":
        weights = [
            _number(w) if _bool(v) else 0.0 for v, w in zip(values[2::2], values[3::2], strict=True)
        ]
        if any(w is None for w in weights):
            return False
        total = 0.0
        for w in weights:
            total += w
        return _within(values[:2], total)
    if name == "digest":
        return _digest(*[_text(v) for v in values])
    if name == "random":
        return _RANDOM.random()
    if name == "uuid":
        return _uuid(values[0] if values else None)
    if name == "date":
        parts = _date_parts(values[0])
        return None if parts is None else f"{parts[0]:04d}-{parts[1]:02d}-{parts[2]:02d}"
    if name == "decimal-date-time":
        parts = _date_parts(values[0])
        return None if parts is None else _days(parts)
    if name in ("format-date", "format-date-time"):
        parts = _date_parts(values[0])
        return None if parts is None else _format_date(parts, _text(values[1])) or None
    if name == "regex":
        try:
            pattern = _compile_regex(args[1].value or "")
        except (_RegexError, AttributeError) as e:  # only for trees built by hand
            raise ExprError(f"bad regex pattern ({e})") from None
        return pattern.search(_text(values[0])) is not None
    raise ExprError(f"unknown function {name}()")


# ---------------------------------------------------------------- the function library
# Text functions work on Unicode code points (the JS twin spreads strings into code points).

_WS = " \t\r\n"


def _translate(s: str, source: str, target: str) -> str:
    table: dict[str, str | None] = {}
    for i, ch in enumerate(source):
        table.setdefault(ch, target[i] if i < len(target) else None)
    return "".join(table.get(ch, ch) or "" for ch in s)


_TEXT_FUNCTIONS = {
    "contains": lambda a, b: b in a,
    "starts-with": lambda a, b: a.startswith(b),
    "ends-with": lambda a, b: a.endswith(b),
    "substring-before": lambda a, b: a[: a.find(b)] if b in a else "",
    "substring-after": lambda a, b: a[a.find(b) + len(b) :] if b in a else "",
    "translate": _translate,
    "normalize-space": lambda a: " ".join(t for t in _SPLIT.split(a) if t),
    "string": lambda a: a,
}


def _substr(s: str, bounds: list[Any]) -> str | None:
    """substr(s, start[, end]): code points start..end-1 (0-based, end exclusive), clamped."""
    numbers = [_number(v) for v in bounds]
    if any(n is None for n in numbers):
        return None
    start = max(0, min(len(s), math.trunc(numbers[0])))
    end = max(0, min(len(s), math.trunc(numbers[1]))) if len(numbers) > 1 else len(s)
    return s[start:end] or None


def _join(values: list[Any], args: Any) -> str | None:
    """join(sep, x): the items of x (a node-set or select-many); join(sep, a, b, ...): the values
    (node-sets give all their items); empty items left out."""
    sep = _text(_scalar(values[0]))
    if len(values) == 2 and not isinstance(values[1], Nodeset):
        items = _tokens(values[1])
    else:
        items = [_text(v) for value in values[1:] for v in _items(value)]
    return sep.join(item for item in items if item) or None


def _pow(x: float, y: float) -> float:
    return math.pow(x, y)


def _log(x: float) -> float | None:
    return math.log(x) if x > 0 else None


def _log10(x: float) -> float | None:
    return math.log10(x) if x > 0 else None


def _sqrt(x: float) -> float | None:
    return math.sqrt(x) if x >= 0 else None


_MATH_FUNCTIONS = {
    "pow": _pow,
    "abs": abs,
    "sqrt": _sqrt,
    "log": _log,
    "log10": _log10,
    "exp": math.exp,
    "ceiling": lambda x: float(math.ceil(x)) if math.isfinite(x) else x,
    "floor": lambda x: float(math.floor(x)) if math.isfinite(x) else x,
}


def _math(fn: Any, args: list[float | None]) -> float | None:
    """A maths function of numbers; empty for a non-number, a domain error or an overflow."""
    if any(x is None for x in args):
        return None
    try:
        result = fn(*args)
    except (ValueError, OverflowError, ZeroDivisionError):
        return None
    return None if result is None or not math.isfinite(result) else float(result)


# ---------------------------------------------------------------- lists and other
# A select-many (or any list answer) is this project's only list: sum/max/min/count-non-empty read
# its items; with several arguments, sum/max/min read the arguments themselves.

_RANDOM = _random.SystemRandom()
_UUID_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _aggregate(name: str, values: list[Any]) -> float | None:
    if len(values) == 1 and not isinstance(values[0], Nodeset):
        items: list[Any] = _tokens(values[0])
    else:
        items = [v for value in values for v in _items(value)]
    numbers = [_number(v) for v in items if v is not None]
    if not numbers or any(x is None for x in numbers):
        return 0.0 if name == "sum" and not numbers else None
    if name == "sum":
        total = 0.0
        for x in numbers:  # left to right like the JS twin (Python 3.12's sum() compensates)
            total += x
        return _finite(total)
    return max(numbers) if name == "max" else min(numbers)


def _count(values: list[Any], args: Any) -> float:
    """count(ns): its items (instances of a repeat count even when empty); a value: 1 or 0."""
    value = values[0]
    if isinstance(value, Nodeset):
        return float(len(value.items))
    return 1.0 if value is not None else 0.0


def _count_non_empty(values: list[Any], args: Any) -> float:
    """count-non-empty(ns): its non-empty items; of a select-many (or text): its items."""
    value = values[0]
    if isinstance(value, Nodeset):
        return float(sum(1 for v in _items(value) if v is not None))
    return float(len(_tokens(value)))


def _indexed_repeat(values: list[Any], args: Any) -> Any:
    """indexed-repeat(${field}, ${repeat}, n): the field's value in instance n (1-based)."""
    field, repeat, n = values[0], values[1], _number(_scalar(values[2]))
    if n is None:
        return None
    if isinstance(field, Nodeset):
        items = field.items
    elif isinstance(repeat, Nodeset) and isinstance(args[0], Ref):
        # inside an instance ${field} is that instance's value: read instance n's own object
        items = tuple(
            item.get(args[0].name) if isinstance(item, Mapping) else None for item in repeat.items
        )
    else:
        return None
    i = math.trunc(n)
    return _load(items[i - 1]) if 1 <= i <= len(items) else None


def _within(bounds: list[Any], count: float) -> bool:
    """checklist's test: min <= count <= max, where -1 (or empty) means no limit."""
    low, high = (_number(b) for b in bounds)
    return (low is None or low == -1 or count >= low) and (
        high is None or high == -1 or count <= high
    )


def _uuid(length: Any) -> str | None:
    if length is None:
        return str(_uuid_module.uuid4())
    n = _number(length)
    if n is None or not 1 <= n <= 1000:
        return None
    return "".join(_RANDOM.choice(_UUID_CHARS) for _ in range(math.trunc(n)))


_NODESET_FUNCTIONS = {
    "count": _count,
    "count-non-empty": _count_non_empty,
    "sum": lambda values, args: _aggregate("sum", values),
    "max": lambda values, args: _aggregate("max", values),
    "min": lambda values, args: _aggregate("min", values),
    "join": _join,
    "indexed-repeat": _indexed_repeat,
}

# ---------------------------------------------------------------- digest, distance, area

_DIGESTS = {"md5": "md5", "sha-1": "sha1", "sha-256": "sha256", "sha-384": "sha384",
            "sha-512": "sha512"}  # fmt: skip
_ENCODINGS = ("base64", "hex")


def _digest(data: str, algorithm: str, encoding: str = "base64") -> str | None:
    """ODK's digest(): the hash of the text's UTF-8 bytes, in base64 (default) or hex."""
    algorithm, encoding = algorithm.lower(), encoding.lower()
    if algorithm not in _DIGESTS or encoding not in _ENCODINGS:
        return None
    raw = hashlib.new(_DIGESTS[algorithm], data.encode("utf-8", "surrogatepass")).digest()
    return raw.hex() if encoding == "hex" else base64.b64encode(raw).decode("ascii")


_EARTH_RADIUS = 6_378_100.0  # metres, JavaRosa's and Enketo's sphere
_POINT_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _raw(node: Expr, ctx: _Context) -> Any:
    """An argument as the answer itself: a reference or `.` unread, anything else evaluated."""
    if isinstance(node, Ref):
        return ctx.answers.get(node.name)
    if isinstance(node, Current):
        return ctx.raw_current
    return _scalar(_eval(node, ctx))


def _points(value: Any) -> list[tuple[float, float]] | None:
    """The points of a geopoint object, geopoint/geotrace/geoshape text ("lat lon alt acc" joined
    by ";") or a node-set of them; None if any point is malformed."""
    if isinstance(value, Nodeset):
        found: list[tuple[float, float]] = []
        for item in value.items:
            points = _points(item)
            if points is None:
                return None
            found += points
        return found
    if isinstance(value, Mapping):
        if not value:
            return []
        lat, lon = _load(value.get("lat")), _load(value.get("lon"))  # numbers stay finite floats
        if not (isinstance(lat, float) and isinstance(lon, float)):
            return None
        return _point([lat, lon])
    text = _text(_load(value)) if not isinstance(value, str) else value
    found = []
    for part in text.split(";"):
        words = _SPLIT.split(part.strip(_WS))
        if words == [""]:
            continue
        if not 2 <= len(words) <= 4 or not all(_POINT_NUMBER.fullmatch(w) for w in words):
            return None
        numbers = [float(w) for w in words]
        if len(numbers) == 4 and numbers[3] < 0:  # accuracy
            return None
        point = _point(numbers)
        if point is None:
            return None
        found += point
    return found


def _point(numbers: list[float]) -> list[tuple[float, float]] | None:
    lat, lon = numbers[0], numbers[1]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return [(lat, lon)]


def _geo(name: str, values: list[Any]) -> float | None:
    """distance(): metres along the points (great-circle legs on JavaRosa's sphere);
    area(): square metres inside them (JavaRosa's projection and triangle fan). Empty with no
    points at all or a malformed one; 0 with too few."""
    points: list[tuple[float, float]] = []
    for value in values:
        found = _points(value)
        if found is None:
            return None
        points += found
    if not points:
        return None
    if name == "distance":
        total = 0.0
        for (lat1, lon1), (lat2, lon2) in zip(points, points[1:], strict=False):
            total += _arc(lat1, lon1, lat2, lon2) * _EARTH_RADIUS
        return total
    return _area(points)


def _radians(degrees: float) -> float:
    return degrees * math.pi / 180  # the JS twin's steps (math.radians rounds differently)


def _arc(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The angle between two points: JavaRosa's spherical law of cosines, written with atan2 so
    that short legs do not lose digits in acos (both twins then agree to the last few bits)."""
    p1, p2, dl = _radians(lat1), _radians(lat2), _radians(lon1 - lon2)
    cosine = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    across = math.cos(p2) * math.sin(dl)
    along = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.atan2(math.sqrt(across * across + along * along), cosine)


def _area(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    metres_per_degree = 2 * _EARTH_RADIUS * math.pi / 360
    lat0, lon0 = points[0]
    xs = [(lon - lon0) * metres_per_degree * math.cos(_radians(lat)) for lat, lon in points[1:]]
    ys = [(lat - lat0) * metres_per_degree for lat, _ in points[1:]]
    total = 0.0
    for i in range(1, len(xs)):
        total += (ys[i - 1] * xs[i] - xs[i - 1] * ys[i]) / 2
    return abs(total)


# ---------------------------------------------------------------- dates
# A date is ISO text "YYYY-MM-DD"; a date-time "YYYY-MM-DDTHH:MM[:SS[.fff]][Z|+HH:MM]". As numbers
# both are days since 1970-01-01 (a date-time: fractional days of its UTC instant), as in ODK.

_DATE_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_EPOCH_ORDINAL = 719163  # datetime.date(1970, 1, 1).toordinal()
_MS_PER_DAY = 86_400_000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _date_parts(value: Any) -> tuple[int, ...] | None:
    """(y, m, d, H, M, S, ms, offset minutes) of a date, date-time or number of days; or None."""
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        value = float(value)
    if isinstance(value, float):
        if not abs(value) < 1e7:  # beyond years 1..9999 either way; also NaN and infinities
            return None
        ms = math.floor(value * _MS_PER_DAY + 0.5)
        day, rest = divmod(ms, _MS_PER_DAY)
        if not 1 <= day + _EPOCH_ORDINAL <= 3652059:  # years 1 to 9999
            return None
        d = datetime.date.fromordinal(day + _EPOCH_ORDINAL)
        return (d.year, d.month, d.day, rest // 3_600_000, rest // 60_000 % 60,
                rest // 1000 % 60, rest % 1000, 0)  # fmt: skip
    if not isinstance(value, str):
        return None
    m = _DATE_TEXT.fullmatch(value)
    if m is None:
        return None
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hh, mi, ss = (int(m.group(i) or 0) for i in (4, 5, 6))
    ms = int((m.group(7) or "0").ljust(3, "0")[:3])
    zone = m.group(8) or "Z"
    offset = (
        0 if zone == "Z" else (-1 if zone[0] == "-" else 1) * (int(zone[1:3]) * 60 + int(zone[4:6]))
    )
    try:
        datetime.date(y, mo, d)
    except ValueError:
        return None
    if hh > 23 or mi > 59 or ss > 59 or abs(offset) > 18 * 60:
        return None
    return (y, mo, d, hh, mi, ss, ms, offset)


def _days(parts: tuple[int, ...]) -> float:
    y, mo, d, hh, mi, ss, ms, offset = parts
    day = datetime.date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    return day + ((hh * 60 + mi - offset) * 60_000 + ss * 1000 + ms) / _MS_PER_DAY


def _format_date(parts: tuple[int, ...], fmt: str) -> str:
    """ODK's format-date codes: %Y %y %m %n %b %d %e %a %H %h %M %S %3; others stay as written."""
    y, mo, d, hh, mi, ss, ms, _ = parts
    weekday = (datetime.date(y, mo, d).toordinal()) % 7  # 0 is Sunday
    codes = {
        "Y": f"{y:04d}", "y": f"{y % 100:02d}", "m": f"{mo:02d}", "n": str(mo),
        "b": _MONTHS[mo - 1], "d": f"{d:02d}", "e": str(d), "a": _WEEKDAYS[weekday],
        "H": f"{hh:02d}", "h": str(hh), "M": f"{mi:02d}", "S": f"{ss:02d}", "3": f"{ms:03d}",
    }  # fmt: skip
    return re.sub(r"%([\s\S])", lambda m: codes.get(m.group(1), m.group()), fmt)


# ---------------------------------------------------------------- regex subset
# Patterns are checked against a subset that Python's re and JavaScript's RegExp (with the "u"
# flag) read alike, then translated so that the remaining differences (\d, \w and \s are
# Unicode-aware in Python; "." and "$" treat line ends differently) disappear.


class _RegexError(ValueError):
    pass


_JS_SPACE = (
    "\\t\\n\\x0b\\f\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
_CLASS_SHORTHANDS = {"d": "0-9", "w": "A-Za-z0-9_", "s": _JS_SPACE}
_CONTROL = {"n": "\\n", "t": "\\t", "r": "\\r"}
_SYNTAX = set("\\^$.|?*+()[]{}/")
_QUANTIFIER = re.compile(r"\{([0-9]{1,4})(?:(,)([0-9]{1,4})?)?\}")


@functools.lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_translate_regex(pattern))


def _translate_regex(p: str) -> str:
    out: list[str] = []
    i, groups, can_repeat = 0, 0, False
    while i < len(p):
        c = p[i]
        if c == "\\":
            text, _, i = _escape(p, i, in_class=False)
            out.append(text)
            can_repeat = True
        elif c == "[":
            text, i = _char_class(p, i)
            out.append(text)
            can_repeat = True
        elif c == "(":
            if p.startswith("(?:", i):
                out.append("(?:")
                i += 3
            elif p.startswith("(?", i):
                raise _RegexError(f"only (...) and (?:...) groups are supported, at {i}")
            else:
                out.append("(")
                i += 1
            groups += 1
            can_repeat = False
        elif c == ")":
            if groups == 0:
                raise _RegexError(f"unbalanced ) at {i}")
            groups -= 1
            out.append(")")
            i += 1
            can_repeat = True
        elif c in "*+?{":
            if not can_repeat:
                raise _RegexError(f"nothing to repeat at {i}")
            if c == "{":
                m = _QUANTIFIER.match(p, i)
                if m is None:
                    raise _RegexError(f"bad {{n,m}} repeat at {i} (write \\{{ for a literal {{)")
                if m.group(3) is not None and int(m.group(3)) < int(m.group(1)):
                    raise _RegexError(f"repeat bounds out of order at {i}")
                text, i = m.group(), m.end()
            else:
                text, i = c, i + 1
            if i < len(p) and p[i] == "?":
                text, i = text + "?", i + 1
            out.append(text)
            can_repeat = False
        elif c in "|^$":
            out.append("\\Z" if c == "$" else c)
            i += 1
            can_repeat = False
        elif c in "]}":
            raise _RegexError(f"write \\{c} for a literal {c}, at {i}")
        elif c == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
            i += 1
            can_repeat = True
        else:
            out.append(re.escape(c))
            i += 1
            can_repeat = True
    if groups:
        raise _RegexError("unclosed (")
    return "".join(out)


def _escape(p: str, i: int, *, in_class: bool) -> tuple[str, str | None, int]:
    """Translate the escape at p[i]; return (python text, the single char or None, next i)."""
    if i + 1 >= len(p):
        raise _RegexError("pattern ends with a backslash")
    c = p[i + 1]
    if c.lower() in _CLASS_SHORTHANDS:
        body = _CLASS_SHORTHANDS[c.lower()]
        if in_class:
            if c.isupper():
                raise _RegexError(f"\\{c} is not supported inside [...], at {i}")
            return body, None, i + 2
        return f"[{'^' if c.isupper() else ''}{body}]", None, i + 2
    if c in _CONTROL:
        return _CONTROL[c], {"n": "\n", "t": "\t", "r": "\r"}[c], i + 2
    if c == "u":
        m = re.compile(r"u([0-9A-Fa-f]{4})").match(p, i + 1)
        if m is None:
            raise _RegexError(f"\\u needs four hex digits, at {i}")
        return "\\" + m.group(), chr(int(m.group(1), 16)), m.end()
    if c in _SYNTAX or (in_class and c == "-"):
        return "\\" + c, c, i + 2
    raise _RegexError(f"unsupported escape \\{c} at {i}")


def _char_class(p: str, i: int) -> tuple[str, int]:
    out, j = ["["], i + 1
    if j < len(p) and p[j] == "^":
        out.append("^")
        j += 1
    first = j
    while True:
        if j >= len(p):
            raise _RegexError("unclosed [")
        if p[j] == "]":
            if j == first:
                raise _RegexError(f"empty [] at {i}")
            out.append("]")
            return "".join(out), j + 1
        text, start, j = _class_atom(p, j, first)
        if j + 1 < len(p) and p[j] == "-" and p[j + 1] != "]":
            end_text, end, j = _class_atom(p, j + 1, first)
            if start is None or end is None:
                raise _RegexError(f"a range needs single characters at both ends, at {j}")
            if ord(start) > ord(end):
                raise _RegexError(f"range out of order at {j}")
            text = f"{text}-{end_text}"
        out.append(text)


def _class_atom(p: str, j: int, first: int) -> tuple[str, str | None, int]:
    c = p[j]
    if c == "\\":
        return _escape(p, j, in_class=True)
    if c == "[":
        raise _RegexError(f"write \\[ for a literal [ inside [...], at {j}")
    if c == "-" and j != first and p[j + 1 : j + 2] != "]":
        raise _RegexError(f"write \\- for a literal - inside [...], at {j}")
    return ("\\" + c if c in "^-&~|" else c), c, j + 1
