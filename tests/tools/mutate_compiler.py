"""Mutation testing of forms/compiler.py (on demand, not part of CI).

    python tests/tools/mutate_compiler.py [--only LINE,LINE] [--from LINE --to LINE] [--no-pytest]

The mutants are those of tests/tools/mutate.py (its ``_Mutator``: comparison and arithmetic
operators, constants off by one, and/or, ``not x`` -> ``x``, ``return x`` -> ``return None``),
applied to the compiler. Each mutant is compiled into a fresh module (never written to the
worktree) and checked in two stages:

1. in-process: the answer sets of tests/test_js.py (the generated cases the JavaScript twin is
   compared on; every repeat and all-types case and a sample of the built-in forms' ones) must
   validate exactly as the unmutated compiler validates them, the built-in forms must compile,
   and the definition problems listed in tests/test_forms_repeat.py and tests/test_forms.py
   must still be found;
2. each survivor: tests/test_forms.py and tests/test_forms_repeat.py under pytest, in a scratch
   copy of forms/ holding the mutant (the push test, which needs the server, and the hypothesis
   properties are deselected for time).

A mutant is killed when a check or test fails, the module does not import, or it runs longer
than ``--timeout`` seconds. Equivalent mutants (no input can observe them) are listed in
EQUIVALENT with the reason and left out of the rate. It prints each survivor, then the rate.
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "tools")]

from mutate import _Mutator  # noqa: E402

MODULE = "forms/compiler.py"

# (stripped source line, change) -> why no input can observe the mutant
EQUIVALENT: dict[tuple[str, str], str] = {
    (
        "many = _repeat_count_messages(0, MAX_REPEAT_INSTANCES)[1]",
        "0 -> 1",
    ): "only the 'too many' message is used; the first argument shapes the other one",
    (
        "many = _repeat_count_messages(0, MAX_REPEAT_INSTANCES)[1]",
        "0 -> -1",
    ): "only the 'too many' message is used; the first argument shapes the other one",
    (
        'run.add(name, "required", spec.get("required_message", _required_message(REPEAT, 0)))',
        "0 -> 1",
    ): "a repeat's default required message does not use min_count",
    (
        'run.add(name, "required", spec.get("required_message", _required_message(REPEAT, 0)))',
        "0 -> -1",
    ): "a repeat's default required message does not use min_count",
    ('lo = spec.get("min_count", 0)', "0 -> 1"): (
        "repeat counts are checked only with instances (got >= 1): min 0 and 1 agree"
    ),
    ('lo = spec.get("min_count", 0)', "0 -> -1"): (
        "repeat counts are checked only with instances: min 0 and -1 agree"
    ),
    ('lo, hi = spec.get("min_count", 0), spec.get("max_count")', "0 -> -1"): (
        "photo counts are checked only for a non-empty list; in the checker lo < 0 and "
        "hi < lo agree for -1 and 0 whenever hi >= 1"
    ),
    ('default = _required_message(ftype, spec.get("min_count", 0))', "0 -> 1"): (
        "the photo message takes max(1, min_count); other types ignore it"
    ),
    ('default = _required_message(ftype, spec.get("min_count", 0))', "0 -> -1"): (
        "the photo message takes max(1, min_count); other types ignore it"
    ),
    ("if len(problems) == before and refs & in_repeats:", "and -> or"): (
        "after a problem the source still parses (an unparsable one returns no refs), so the "
        "node-set check only adds a message next to an existing problem"
    ),
    ('lo, hi = spec.get("min_count", 0), spec.get("max_count")', "0 -> 1"): (
        "photo counts are checked only for a non-empty list (a minimum of 0 and 1 agree); in the "
        "checker a default minimum of 1 changes no verdict: max_count below 1 is refused either way"
    ),
    ('code = messages[0] if isinstance(messages, list) and messages else "type"', "and -> or"): (
        "marshmallow reports a field's errors as a non-empty list"
    ),
    ('code = messages[0] if isinstance(messages, list) and messages else "type"', "0 -> -1"): (
        "each answer field raises one ValidationError: its list has one message"
    ),
    (
        'return f"<CompiledForm {self.id} v{self.version} target={self.target}>"',
        "return x -> return None",
    ): "repr for debugging only",  # fmt: skip
}

DAY = datetime.date(2026, 11, 20)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _load(tree: ast.AST, name: str):
    module = types.ModuleType(name)
    module.__file__ = str(ROOT / MODULE)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(tree, str(ROOT / MODULE), "exec"), module.__dict__)  # noqa: S102 - our source
    return module


def _checks():
    """The in-process checks: (answer cases, definition problem cases)."""
    import test_forms
    import test_forms_repeat
    import test_js

    definitions, cases = test_js.form_cases()
    special = [c for c in cases if c["form"] in ("repeats", "all_types")]
    cases = special + [c for c in cases if c["form"] not in ("repeats", "all_types")][::10]
    problem_cases = []
    for fields, updates, needle in _params(test_forms_repeat.test_definition_problems):
        problem_cases.append((test_forms_repeat.with_fields(*fields, updates=updates), needle))
    for change, needle in _params(test_forms.test_definition_checker_catches):
        definition = test_forms.minimal_definition()
        change(definition)
        problem_cases.append((definition, needle))
    return definitions, cases, problem_cases


def _params(function) -> list[tuple]:
    marks = [m for m in function.pytestmark if m.name == "parametrize"]
    return [tuple(getattr(p, "values", p)) for p in marks[0].args[1]]


def _stage_one(module, definitions, cases, problem_cases) -> str | None:
    try:
        compiled = {k: module.compile_form(copy.deepcopy(d)) for k, d in definitions.items()}
        for c in cases:
            v = compiled[c["form"]].validate(
                copy.deepcopy(c["answers"]), observed_on=DAY, observed_at=c.get("now")
            )
            got = {"answers": v.answers, "errors": v.errors, "dropped": v.dropped,
                   "photos": v.photos}  # fmt: skip
            if json.dumps(got, sort_keys=True) != json.dumps(c["expected"], sort_keys=True):
                return f"case of {c['form']}"
        for definition, needle in problem_cases:
            try:
                module.compile_form(copy.deepcopy(definition))
                found = []
            except module.DefinitionError as exc:
                found = exc.problems
            if (needle is None) != (not found) or (needle and not any(needle in p for p in found)):
                return f"definition: {needle}"
    except _Timeout:
        raise
    except Exception as e:  # noqa: BLE001 - any crash kills the mutant
        return f"{type(e).__name__}: {e}"
    return None


def _pytest_kills(tree: ast.AST) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(
            ROOT / "forms", root / "forms", ignore=shutil.ignore_patterns("__pycache__")
        )
        (root / MODULE).write_text(ast.unparse(tree), encoding="utf-8")
        (root / "tests").mkdir()
        for name in ("test_forms.py", "test_forms_repeat.py"):
            shutil.copy(ROOT / "tests" / name, root / "tests" / name)
        env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                 "--noconftest", "-k", "not through_push and not never_raises",
                 str(root / "tests")],
                cwd=root, env=env, capture_output=True, timeout=300, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return True
        return done.returncode != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--only", help="comma-separated line numbers")
    parser.add_argument("--from", dest="first", type=int, default=0)
    parser.add_argument("--to", dest="last", type=int, default=10**9)
    parser.add_argument("--no-pytest", action="store_true", help="stage 1 only (fast)")
    args = parser.parse_args(argv)
    source = (ROOT / MODULE).read_text(encoding="utf-8")
    lines = source.splitlines()
    pristine = ast.parse(source)
    counter = _Mutator()
    counter.visit(copy.deepcopy(pristine))
    definitions, cases, problem_cases = _checks()
    base = _stage_one(_load(pristine, "_mutant_base"), definitions, cases, problem_cases)
    if base is not None:
        print(f"the unmutated module fails a check: {base}")
        return 2
    only = {int(x) for x in args.only.split(",")} if args.only else None
    signal.signal(signal.SIGALRM, _alarm)
    killed = equivalent = 0
    survivors = []
    started = time.monotonic()
    for target, (line, change) in enumerate(counter.sites):
        if (only and line not in only) or not args.first <= line <= args.last:
            continue
        if (lines[line - 1].strip(), change) in EQUIVALENT:
            equivalent += 1
            continue
        tree = ast.fix_missing_locations(_Mutator(target).visit(copy.deepcopy(pristine)))
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            failure = _stage_one(
                _load(tree, f"_mutant_{target}"), definitions, cases, problem_cases
            )
        except _Timeout:
            failure = "timeout"
        except Exception as e:  # noqa: BLE001 - a mutant that does not import is killed
            failure = f"import: {type(e).__name__}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.modules.pop(f"_mutant_{target}", None)
        if failure is None and not args.no_pytest and _pytest_kills(tree):
            failure = "pytest"
        if failure is None:
            survivors.append((line, change))
            print(f"SURVIVED line {line}: {change}    {lines[line - 1].strip()}", flush=True)
        else:
            killed += 1
    total = killed + len(survivors)
    rate = 100.0 * killed / total if total else 100.0
    print(
        f"{killed} of {total} mutants killed ({rate:.1f}%), {equivalent} equivalent left out, "
        f"{time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
