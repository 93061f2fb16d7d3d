"""Mutation testing of forms/expr.py and forms/compiler.py (on demand, not part of CI).

    python tests/tools/mutate.py [--module forms/expr.py|forms/compiler.py] [--only LINE,LINE]

A small AST mutator, no dependency (mutmut is not needed and not in setup.cfg). Each mutant is one
change to the module's syntax tree:

- comparison operators flipped at the boundary (``<`` ↔ ``<=``, ``>`` ↔ ``>=``, ``==`` ↔ ``!=``,
  ``in`` ↔ ``not in``, ``is`` ↔ ``is not``);
- arithmetic ``+`` ↔ ``-``, ``*`` ↔ ``/``;
- integer and float constants off by one (``n + 1`` and ``n - 1``; booleans are left alone);
- ``and`` ↔ ``or``; ``not x`` → ``x``;
- ``return x`` → ``return None`` (dropping what a function returns).

The mutant is compiled into a fresh module (never written to disk) and every case of
forms/expr_vectors.json is run against it in-process, exactly as tests/test_expr.py's
``test_vector`` checks them (same result comparison, parse errors must raise ExprError, and
``references``). Each survivor of that fast stage then runs tests/test_expr.py under pytest
(a copy of the tree in a temporary directory holding the mutated module; the hypothesis property
tests are deselected for time: they check that nothing raises, which the vectors cover too).
For forms/compiler.py (no vectors) the fast stage runs, in-process, every plain and parametrized
test function of the files in SUITES (tests/test_compiler_cases.py, test_compiler_repeats.py,
test_forms.py, test_forms_repeat.py) against the mutant (the mutant stands in for
``forms.compiler``; forms/definitions.py and the test modules are loaded afresh over it;
hypothesis tests and tests taking fixtures wait for the second stage); each survivor then runs
those files under pytest in a scratch tree (forms/ copied, compiler.py mutated), hypothesis
included, tests needing the app's fixtures deselected.

A mutant is *killed* when a vector or test fails, the module fails to import, or it runs longer
than ``--timeout`` seconds (an endless loop; for the compiler at least ten times what the
unmutated module takes). It prints each equivalent mutant it left out with the reason, each
survivor with its line and the change, then the kill rate. Equivalent mutants (a
change no input can observe) have to be judged by hand: list them in EQUIVALENT below with the
reason, and they are left out of the rate.
"""

from __future__ import annotations

import argparse
import ast
import copy
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (line, change) of mutants judged equivalent, with the reason; they do not count in the rate.
EQUIVALENT: dict[tuple[str, str], str] = {
    # keyed by the stripped source line and the change, so edits elsewhere do not shift them
    ('"today": (0, 0),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ('"true": (0, 0),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ('"false": (0, 0),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ('"concat": (0, None),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ("_UNARY_BP = 7", "7 -> 8"): "unary minus: no binary operator binds tighter than 6",
    ("_UNARY_BP = 7", "7 -> 6"): "unary minus: no binary operator binds tighter than 6",
    ("self.level = 0", "0 -> -1"): "the level guard: the depth count rejects the same nesting",
    (
        "def expression(self, min_bp: int = 0) -> tuple[Expr, int]:",
        "0 -> 1",
    ): "default min_bp: every call passes it",
    (
        "def expression(self, min_bp: int = 0) -> tuple[Expr, int]:",
        "0 -> -1",
    ): "default min_bp: every call passes it",
    ("self.level -= 1", "1 -> 2"): "the level guard: the depth count rejects the same nesting",
    (
        "return Str(tok.text[1:-1] or None), 1",
        "1 -> 0",
    ): "literal depth: the level guard rejects the same nesting",
    (
        "return Ref(tok.text[2:-1]), 1",
        "1 -> 0",
    ): "literal depth: the level guard rejects the same nesting",
    ("return Current(), 1", "1 -> 0"): "literal depth: the level guard rejects the same nesting",
    (
        "inner, depth = self.expression(0)",
        "0 -> -1",
    ): "binding powers are all >= 1: min_bp 0 and -1 accept the same",
    ("args, depth = [], 0", "0 -> -1"): "call depth: the level guard rejects the same nesting",
    (
        "arg, arg_depth = self.expression(0)",
        "0 -> -1",
    ): "binding powers are all >= 1: min_bp 0 and -1 accept the same",
    (
        'raise ExprError(f"bad regex pattern ({e.args[0]})", name.pos) from None',
        "0 -> -1",
    ): "_RegexError always has one argument",
    ("@functools.lru_cache(maxsize=2048)", "2048 -> 2049"): "cache size",
    ("@functools.lru_cache(maxsize=2048)", "2048 -> 2047"): "cache size",
    (
        "node, _ = parser.expression(0)",
        "0 -> -1",
    ): "binding powers are all >= 1: min_bp 0 and -1 accept the same",
    ('sign = "-" if x < 0 else ""', "< -> <="): "x == 0 has returned already",
    ("if 0 < n <= 21:", "21 -> 20"): "unreachable: a double has at most 17 significant digits",
    ("if 0 < n <= 21:", "<= -> <"): "unreachable: a double has at most 17 significant digits",
    ("if -6 < n <= 0:", "0 -> 1"): "unreachable: n == 1 took the branch above",
    (
        "return f\"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}\"",
        "0 -> 1",
    ): "the exponent here is >= 21 or <= -7, never 0 or 1",
    (
        "return f\"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}\"",
        "0 -> -1",
    ): "the exponent here is >= 21 or <= -7, never 0 or -1",
    (
        "return f\"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}\"",
        "> -> >=",
    ): "the exponent here is >= 21 or <= -7, never 0",
    (
        "if a is None or b is None:",
        "or -> and",
    ): "one empty side (_equal, _order): later branches answer false as well",
    (
        "scaled = abs(x) * scale if d >= 0 else abs(x) / scale",
        "0 -> 1",
    ): "digits 0: scaling by 1e0 multiplies or divides by 1 alike",
    (
        "scaled = abs(x) * scale if d >= 0 else abs(x) / scale",
        ">= -> >",
    ): "digits 0: scaling by 1e0 multiplies or divides by 1 alike",
    (
        "if not math.isfinite(scaled) or scaled >= 2**52:",
        "2 -> 3",
    ): "from 2^52 on a double is an integer: floor changes nothing",
    (
        "if not math.isfinite(scaled) or scaled >= 2**52:",
        "52 -> 53",
    ): "from 2^52 on a double is an integer: floor changes nothing",
    (
        "if not math.isfinite(scaled) or scaled >= 2**52:",
        ">= -> >",
    ): "from 2^52 on a double is an integer: floor changes nothing",
    (
        "if not math.isfinite(scaled) or scaled >= 2**52:",
        "or -> and",
    ): "an infinite scaled value is also >= 2^52: both return x",
    (
        "result = whole / scale if d >= 0 else whole * scale",
        "0 -> 1",
    ): "digits 0: scaling by 1e0 multiplies or divides by 1 alike",
    (
        "result = whole / scale if d >= 0 else whole * scale",
        ">= -> >",
    ): "digits 0: scaling by 1e0 multiplies or divides by 1 alike",
    (
        "return not _bool(values[0])",
        "0 -> -1",
    ): "values[-1] is values[0] for a one-argument function",
    (
        "return float(len(_tokens(values[0])))",
        "0 -> -1",
    ): "values[-1] is values[0] for a one-argument function",
    (
        "return float(len(_text(values[0])))",
        "0 -> -1",
    ): "values[-1] is values[0] for a one-argument function",
    ("return _number(values[0])", "0 -> -1"): "values[-1] is values[0] for a one-argument function",
    ("x = _number(values[0])", "0 -> -1"): "values[-1] is values[0] for a one-argument function",
    ("@functools.lru_cache(maxsize=256)", "256 -> 257"): "cache size",
    ("@functools.lru_cache(maxsize=256)", "256 -> 255"): "cache size",
    (
        'return "\\\\" + m.group(), chr(int(m.group(1), 16)), m.end()',
        "16 -> 17",
    ): "only the order of two 4-digit hex codes is used: base 17 keeps it",
    (
        'if j + 1 < len(p) and p[j] == "-" and p[j + 1] != "]":',
        "1 -> 2",
    ): "a range whose end is the last character is an unclosed [ either way",
    ('"now": (0, 0),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ('"pi": (0, 0),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ('"random": (0, 0),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    ('"uuid": (0, 1),', "0 -> -1"): "fewest arguments: a call cannot have fewer than 0",
    (
        "return ctx.current if ctx.current is not None else _eval(args[0], ctx)",
        "0 -> -1",
    ): "args[-1] is args[0] for a one-argument function",
    ("return _bool(values[0])", "0 -> -1"): "values[-1] is values[0] for a one-argument function",
    (
        'return _text(values[0]) in ("true", "1")',
        "0 -> -1",
    ): "values[-1] is values[0] for a one-argument function",
    ("return _uuid(values[0] if values else None)", "0 -> -1"): "uuid takes at most one argument",
    (
        "parts = _date_parts(values[0])",
        "0 -> -1",
    ): "date() and decimal-date-time() take one argument",
    (
        "items = _tokens(values[0]) if len(values) == 1 else values",
        "0 -> -1",
    ): "only with one argument",
    (
        "return math.log(x) if x > 0 else None",
        "0 -> -1",
    ): "math.log raises for x <= 0; _math answers empty",
    (
        "return math.log(x) if x > 0 else None",
        "> -> >=",
    ): "math.log raises for x <= 0; _math answers empty",
    (
        "return math.log10(x) if x > 0 else None",
        "0 -> -1",
    ): "math.log10 raises for x <= 0; _math answers empty",
    (
        "return math.log10(x) if x > 0 else None",
        "> -> >=",
    ): "math.log10 raises for x <= 0; _math answers empty",
    (
        "return math.sqrt(x) if x >= 0 else None",
        "0 -> -1",
    ): "math.sqrt raises for x < 0; _math answers empty",
    (
        "return (low is None or low == -1 or count >= low) and (",
        "1 -> 2",
    ): "low == -1 or -2 or 0: a count is >= 0 > -1, so count >= low holds anyway",
    (
        "return (low is None or low == -1 or count >= low) and (",
        "1 -> 0",
    ): "low == -1 or -2 or 0: a count is >= 0 > -1, so count >= low holds anyway",
    (
        "if not abs(value) < 1e7:  # beyond years 1..9999 either way; also NaN and infinities",
        "10000000.0 -> 10000001.0",
    ): "the year 1..9999 check below rejects these days too",
    (
        "if not abs(value) < 1e7:  # beyond years 1..9999 either way; also NaN and infinities",
        "10000000.0 -> 9999999.0",
    ): "the year 1..9999 check below rejects these days too",
    (
        "if not abs(value) < 1e7:  # beyond years 1..9999 either way; also NaN and infinities",
        "< -> <=",
    ): "the year 1..9999 check below rejects these days too",
    (
        'ms = int((m.group(7) or "0").ljust(3, "0")[:3])',
        "3 -> 4",
    ): "ljust(4) then [:3]: the fourth digit is cut again (the [:4] mutant is killed)",
    (
        '"weighted-checklist": (2, None),',
        "2 -> 1",
    ): "one argument is odd: the pairs check rejects it anyway",
    (
        '0 if zone == "Z" else (-1 if zone[0] == "-" else 1) * (int(zone[1:3]) * 60 + int(zone[4:6]))',  # noqa: E501
        "6 -> 7",
    ): "zone is exactly 6 characters: [4:7] is [4:6]",
    # issue 15: node-sets, position(..), geometry
    ('"position": (1, 1),  # only as position(..)', "1 -> 2"): "position(..) has its own parse "
    "rule; its arity entry only lists it",
    ('"position": (1, 1),  # only as position(..)', "1 -> 0"): "position(..) has its own parse "
    "rule; its arity entry only lists it",
    ("return Name(tok.text), 1", "1 -> 0"): "literal depth: the level guard rejects the same "
    "nesting",
    ('return Call("position", ()), 1', "1 -> 0"): "literal depth: the level guard rejects the "
    "same nesting",
    (
        "return ctx.current if ctx.current is not None else _scalar(_eval(args[0], ctx))",
        "0 -> -1",
    ): "once() has exactly one argument: args[-1] is args[0]",
    (
        "if len(values) == 1 and not isinstance(values[0], Nodeset):",
        "0 -> -1",
    ): "one value: values[-1] is values[0]",
    ("items: list[Any] = _tokens(values[0])", "0 -> -1"): "one value: values[-1] is values[0]",
    ("value = values[0]", "0 -> -1"): "count() and count-non-empty() have exactly one argument",
    ("if len(points) < 3:", "3 -> 2"): "two points: the fan has one leg and adds nothing, 0 "
    "either way",
    (
        "total += (ys[i - 1] * xs[i] - xs[i - 1] * ys[i]) / 2",
        "+= -> -=",
    ): "subtracting every term negates the total, and abs() takes the sign off",
}

# forms/compiler.py: (stripped line, change) -> why no input can tell the mutant apart.
EQUIVALENT_COMPILER: dict[tuple[str, str], str] = {
    (
        'lo, hi = spec.get("min_count", 0), spec.get("max_count")',
        "0 -> 1",
    ): "checker: a default min_count of 1 only matters through hi < lo, which hi < 1 covers; "
    "in validate the default is read only for a non-empty list (len >= 1 is never < 1)",
    (
        'lo, hi = spec.get("min_count", 0), spec.get("max_count")',
        "0 -> -1",
    ): "validate: the default is read only for a non-empty list (len >= 1 is never < 0 or < -1)",
    (
        'code = messages[0] if isinstance(messages, list) and messages else "type"',
        "and -> or",
    ): "marshmallow gives every failing field a non-empty list of messages",
    (
        'code = messages[0] if isinstance(messages, list) and messages else "type"',
        "0 -> -1",
    ): "each answer field raises one ValidationError: its list has exactly one message",
    (
        'add(name, "required", _required_message(ftype, spec.get("min_count", 0)))',
        "0 -> 1",
    ): "_required_message uses max(1, min_count): a default of 0, 1 or -1 gives 1",
    (
        'add(name, "required", _required_message(ftype, spec.get("min_count", 0)))',
        "0 -> -1",
    ): "_required_message uses max(1, min_count): a default of 0, 1 or -1 gives 1",
    # the repeat code of issue 15
    **{
        ("many = _repeat_count_messages(0, MAX_REPEAT_INSTANCES)[1]", c): "only the 'many' "
        "message is used; the min_count argument only shapes the 'few' one"
        for c in ("0 -> 1", "0 -> -1")
    },
    **{
        ('default = _required_message(ftype, spec.get("min_count", 0))', c): "_required_message "
        "uses max(1, min_count): a default of 0, 1 or -1 gives 1"
        for c in ("0 -> 1", "0 -> -1")
    },
    **{
        ('lo = spec.get("min_count", 0)', c): "a repeat's min_count is compared only when it has "
        "instances (got >= 1 is never < 1, 0 or -1)"
        for c in ("0 -> 1", "0 -> -1")
    },
    **{
        (
            'run.add(name, "required", spec.get("required_message", _required_message(REPEAT, 0)))',
            c,
        ): "the repeat's required message does not use min_count"
        for c in ("0 -> 1", "0 -> -1")
    },
}
EQUIVALENT.update(EQUIVALENT_COMPILER)

_CMP_SWAP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+",
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.And: "and", ast.Or: "or",
}  # fmt: skip


class _Mutator(ast.NodeTransformer):
    """Walks the tree counting mutation sites; applies the one numbered ``target``."""

    def __init__(self, target: int = -1):
        self.target, self.count, self.applied = target, 0, None
        self.sites: list[tuple[int, str]] = []

    def _site(self, node: ast.AST, change: str) -> bool:
        hit = self.count == self.target
        self.sites.append((node.lineno, change))
        self.count += 1
        if hit:
            self.applied = (node.lineno, change)
        return hit

    def visit_Expr(self, node):  # docstrings and bare expressions: nothing to mutate in a string
        if isinstance(node.value, ast.Constant):
            return node
        return self.generic_visit(node)

    def visit_AnnAssign(self, node):  # skip annotations, keep the value
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_FunctionDef(self, node):
        node.returns = None
        for arg in node.args.args + node.args.kwonlyargs:
            arg.annotation = None
        node.body = [self.visit(stmt) for stmt in node.body]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [d if d is None else self.visit(d) for d in node.args.kw_defaults]
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            new = _CMP_SWAP.get(type(op))
            if new and self._site(node, f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]}"):
                node.ops[i] = new()
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        new = _BIN_SWAP.get(type(node.op))
        if new and self._site(node, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}"):
            node.op = new()
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        new = _BIN_SWAP.get(type(node.op))
        if new and self._site(node, f"{_SYMBOL[type(node.op)]}= -> {_SYMBOL[new]}="):
            node.op = new()
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}"):
            node.op = new()
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not x -> x"):
            return node.operand
        return node

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return node
        for delta in (1, -1):
            if self._site(node, f"{value!r} -> {value + delta!r}"):
                return ast.copy_location(ast.Constant(value + delta), node)
        return node

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            if self._site(node, "return x -> return None"):
                node.value = None
        return node


def _same(got, want) -> bool:
    if isinstance(want, bool) or isinstance(got, bool) or want is None or got is None:
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(got - want) <= 1e-9 * max(1.0, abs(got), abs(want))
    return type(got) is type(want) and got == want


def _run_vectors(module, vectors) -> str | None:
    """None if every vector passes, else the first failure."""
    today = datetime.date.fromisoformat(vectors["today"])
    error = module.ExprError
    for case in vectors["cases"]:
        kwargs = {"current": case.get("current"), "today": today, "now": vectors["now"]}
        kwargs.update(
            position=case.get("position"), choice=case.get("choice"), labels=case.get("labels")
        )
        answers = {
            key: module.Nodeset(value["$nodeset"])
            if isinstance(value, dict) and "$nodeset" in value
            else value
            for key, value in case["answers"].items()
        }
        try:
            if "error" in case:
                for run_it in (False, True):
                    if not run_it and case["error"] != "parse":
                        continue
                    try:
                        if run_it:
                            module.evaluate(case["expr"], answers, **kwargs)
                        else:
                            module.parse(case["expr"])
                    except error:
                        continue
                    return f"{case['name']}: no error"
                continue
            got = module.evaluate(case["expr"], answers, **kwargs)
            if not _same(got, case["result"]):
                return f"{case['name']}: got {got!r}"
            json.dumps(got, allow_nan=False)
            if "references" in case and module.references(case["expr"]) != frozenset(
                case["references"]
            ):
                return f"{case['name']}: references"
            if "bare_names" in case and module.bare_names(case["expr"]) != frozenset(
                case["bare_names"]
            ):
                return f"{case['name']}: bare names"
            if (
                "uses_position" in case
                and module.uses_position(case["expr"]) is not (case["uses_position"])
            ):
                return f"{case['name']}: uses_position"
        except _Timeout:
            raise
        except Exception as e:  # noqa: BLE001 - any crash kills the mutant
            return f"{case['name']}: {type(e).__name__}: {e}"
    return None


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _load(tree: ast.AST, path: Path, name: str):
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - our own source
    return module


PYTEST_DESELECT = "not never_raises and not raises_only and not rejected_or and not finds_exactly"


def _pytest_kills(tree: ast.AST, module: str, vectors: str) -> bool:
    """Run tests/test_expr.py against the mutated module in a scratch tree; True if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "forms").mkdir()
        (root / "tests").mkdir()
        (root / "docs").mkdir()
        (root / "forms" / "__init__.py").write_text("")
        (root / module).write_text(ast.unparse(tree), encoding="utf-8")
        shutil.copy(ROOT / vectors, root / "forms" / "expr_vectors.json")
        shutil.copy(ROOT / "docs" / "EXPRESSIONS.md", root / "docs" / "EXPRESSIONS.md")
        shutil.copy(ROOT / "tests" / "test_expr.py", root / "tests" / "test_expr.py")
        env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                 "-k", PYTEST_DESELECT, str(root / "tests" / "test_expr.py")],
                cwd=root, env=env, capture_output=True, timeout=120, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return True
        return done.returncode != 0


# Per module: the test files of its pytest stage, and whether the shared vectors run first.
SUITES = {
    "forms/expr.py": {"vectors": True, "tests": ["tests/test_expr.py"]},
    "forms/compiler.py": {
        "vectors": False,
        "tests": [
            "tests/test_compiler_cases.py",
            "tests/test_compiler_repeats.py",
            "tests/test_forms.py",
            "tests/test_forms_repeat.py",
        ],
        # needs the app's fixtures (tests/conftest.py): not in the scratch tree
        "deselect": "not through_push",
    },
}


def _expand(fn) -> list[tuple]:
    """The argument tuples of a test function: [()] for a plain one, one per case of a single
    @pytest.mark.parametrize; [] when it needs pytest (fixtures, hypothesis, several marks)."""
    import inspect

    if getattr(fn, "is_hypothesis_test", False):
        return []
    params = list(inspect.signature(fn).parameters)
    marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
    if not marks:
        return [()] if not params else []
    if len(marks) > 1:
        return []
    names, values = marks[0].args[0], marks[0].args[1]
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    if names != params:
        return []
    out = []
    for value in values:
        value = getattr(value, "values", value)  # pytest.param(...)
        out.append(
            tuple(value)
            if len(names) > 1
            else (value if isinstance(value, tuple) and len(value) == 1 else (value,))
        )
    return out


def _run_tests_inprocess(tree: ast.AST, path: Path, test_files: list[str]) -> str | None:
    """Run the test functions of test_files against the mutated forms.compiler; None if all
    pass, else the first failure."""
    import importlib.util

    import pytest

    import forms

    saved = {k: sys.modules.get(k) for k in ("forms.compiler", "forms.definitions")}
    saved_attrs = {k: getattr(forms, k, None) for k in ("compiler", "definitions")}
    try:
        mutant = _load(tree, path, "forms.compiler")
        forms.compiler = mutant
        defs_path = ROOT / "forms" / "definitions.py"
        forms.definitions = _load(ast.parse(defs_path.read_text("utf-8")), defs_path,
                                  "forms.definitions")  # fmt: skip
        for rel in test_files:
            spec = importlib.util.spec_from_file_location(
                f"_mutant_tests_{Path(rel).stem}", ROOT / rel
            )
            tests = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(tests)
            except pytest.skip.Exception:  # a module-level skip: no tests here
                continue
            for name in dir(tests):
                fn = getattr(tests, name)
                if not name.startswith("test_") or not callable(fn):
                    continue
                for case in _expand(fn):
                    try:
                        fn(*case)
                    except _Timeout:
                        raise
                    except BaseException as e:  # noqa: BLE001 - any failure kills the mutant
                        return f"{rel}::{name}{case!r:.60}: {type(e).__name__}"
        return None
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k, v in saved_attrs.items():
            setattr(forms, k, v)


def _pytest_kills_tests(
    tree: ast.AST, module: str, test_files: list[str], deselect: str = "not _none_"
) -> bool:
    """Run test_files under pytest against the mutated module in a scratch tree (forms/ copied);
    True if they fail."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "forms", root / "forms",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        (root / "tests").mkdir()
        (root / module).write_text(ast.unparse(tree), encoding="utf-8")
        for rel in test_files:
            shutil.copy(ROOT / rel, root / rel)
        env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                 "-k", deselect, *[str(root / rel) for rel in test_files]],
                cwd=root, env=env, capture_output=True, timeout=300, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return True
        return done.returncode != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", default="forms/expr.py")
    parser.add_argument("--vectors", default="forms/expr_vectors.json")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--only", help="comma-separated line numbers")
    parser.add_argument("--no-pytest", action="store_true", help="vectors only (fast)")
    args = parser.parse_args(argv)
    suite = SUITES.get(args.module, SUITES["forms/expr.py"])
    path = ROOT / args.module
    source = path.read_text(encoding="utf-8")
    pristine = ast.parse(source)
    lines = source.splitlines()
    counter = _Mutator()
    counter.visit(copy.deepcopy(pristine))
    sys.path.insert(0, str(ROOT))
    sys.path.insert(1, str(ROOT / "tests"))
    if suite["vectors"]:
        vectors = json.loads((ROOT / args.vectors).read_text(encoding="utf-8"))

        def fast(tree, target):
            return _run_vectors(_load(tree, path, f"_mutant_{target}"), vectors)

        def slow(tree):
            return _pytest_kills(tree, args.module, args.vectors)
    else:

        def fast(tree, target):
            return _run_tests_inprocess(tree, path, suite["tests"])

        def slow(tree):
            return _pytest_kills_tests(
                tree, args.module, suite["tests"], suite.get("deselect", "not _none_")
            )

    began = time.monotonic()
    base = fast(pristine, "base")
    if base is not None:
        print(f"the unmutated module fails: {base}")
        return 2
    # a mutant is killed by a timeout only when it runs far longer than the unmutated module
    timeout = max(args.timeout, 10 * (time.monotonic() - began))
    only = {int(x) for x in args.only.split(",")} if args.only else None
    signal.signal(signal.SIGALRM, _alarm)
    killed = survived = equivalent = 0
    survivors, equivalents = [], []
    started = time.monotonic()
    for target, (line, change) in enumerate(counter.sites):
        if only and line not in only:
            continue
        mutator = _Mutator(target)
        tree = ast.fix_missing_locations(mutator.visit(copy.deepcopy(pristine)))
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            failure = fast(tree, target)
        except _Timeout:
            failure = "timeout"
        except Exception as e:  # noqa: BLE001 - a mutant that does not import is killed
            failure = f"import: {type(e).__name__}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.modules.pop(f"_mutant_{target}", None)
        if (
            failure is None
            and not args.no_pytest
            and (lines[line - 1].strip(), change) not in EQUIVALENT
        ):
            if slow(tree):
                failure = "pytest"
        if failure is not None:
            killed += 1
        elif (lines[line - 1].strip(), change) in EQUIVALENT:
            equivalent += 1
            equivalents.append((line, change))
        else:
            survived += 1
            survivors.append((line, change))
    for line, change in equivalents:
        reason = EQUIVALENT[(lines[line - 1].strip(), change)]
        print(f"EQUIVALENT {args.module}:{line}: {change:<26} | {reason[:90]}")
    for line, change in survivors:
        text = source.splitlines()[line - 1].strip()
        print(f"SURVIVED {args.module}:{line}: {change:<28} | {text[:80]}")
    total = killed + survived
    rate = 100.0 * killed / total if total else 100.0
    print(
        f"{killed + survived + equivalent} mutants: {killed} killed, {survived} survived, "
        f"{equivalent} equivalent (excluded); kill rate {rate:.1f}% "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0 if rate >= 90.0 else 1


if __name__ == "__main__":
    sys.exit(main())
