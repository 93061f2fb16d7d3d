"""Issue 15's expression additions (node-sets, position(..), bare names, digest, distance, area):
the two twins agree on generated inputs, and the geometry stays within 0.1% of Enketo's formula.

The shared vectors pin chosen cases; here Python's answers to a few thousand generated ones are
handed to the JavaScript twin (one node process), so a difference the vectors miss still shows.
"""

import datetime
import json
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from forms import expr

ROOT = Path(__file__).resolve().parent.parent
TODAY = datetime.date(2026, 11, 23)
NOW = "2026-11-23T09:30:15.5+08:00"

TEMPLATES = [
    "count(${a})",
    "count-non-empty(${a}) + count(${b})",
    "sum(${a})",
    "sum(${a}, ${b}, 1)",
    "max(${a})",
    "min(${a}, ${b})",
    "join('|', ${a})",
    "join(${b}, ${a}, ${c})",
    "indexed-repeat(${a}, ${b}, ${c})",
    "indexed-repeat(${a}, ${b}, position(..) - 1)",
    "indexed-repeat(${x}, ${b}, ${c})",
    "position(..) * 2 + count(${a})",
    "${a} + ${b}",
    "${a} = ${b}",
    "${a} < ${c}",
    "if(${a}, ${b}, ${c})",
    "coalesce(${a}, ${b})",
    "concat(${a}, '-', ${b})",
    "selected(${a}, ${b})",
    "string-length(${a})",
    "name = ${a} or county = ${b}",
    "concat(name, county, size)",
    "size > ${c}",
    "digest(${a}, 'MD5', 'hex')",
    "digest(${a}, 'SHA-1')",
    "digest(${a}, 'SHA-256', 'hex')",
    "digest(${a}, 'SHA-384')",
    "digest(${a}, 'SHA-512', 'hex')",
    "digest(${a}, ${b}, ${c})",
    "distance(${a})",
    "distance(${a}, ${b}, ${c})",
    "distance(.)",
    "area(${a})",
    "area(.)",
    "round(area(${a}) + distance(${b}), 6)",
]
SCALARS = [
    None, True, False, 0, 1, 2, -3, 2.5, 1e21, "", " ", "a", "b c", "3", " 2.5 ", "abc", "村委会",
    "😀", "2026-11-20", "MD5", "sha-256", "hex", "base64", "HEX", "x" * 55, "y" * 112,
]  # fmt: skip


def geo_text(rand: random.Random) -> str:
    lat0, lon0 = rand.uniform(18, 45), rand.uniform(97, 125)
    points = []
    for _ in range(rand.randint(0, 6)):
        words = [
            f"{lat0 + rand.uniform(-0.02, 0.02):.7f}",
            f"{lon0 + rand.uniform(-0.02, 0.02):.7f}",
        ]
        words += [str(rand.randint(0, 900)), str(rand.randint(0, 30))][: rand.randint(0, 2)]
        points.append(" ".join(words))
    text = ";".join(points) + (";" if rand.random() < 0.3 else "")
    if rand.random() < 0.1:
        text += rand.choice([";91 0", ";0 181", ";x y", ";1 2 3 -4", ";1 2 3 4 5", ";1"])
    return text


def geopoint(rand: random.Random) -> dict:
    point = {"lat": rand.uniform(-90, 90), "lon": rand.uniform(-180, 180)}
    if rand.random() < 0.5:
        point["accuracy"] = rand.uniform(0, 30)
    if rand.random() < 0.05:
        point["lat"] = rand.choice([True, "24.3", None, 95.0])
    return point


def value(rand: random.Random, depth: int = 0):
    roll = rand.random()
    if roll < 0.15:
        return geo_text(rand)
    if roll < 0.25:
        return geopoint(rand)
    if roll < 0.3:
        return {"room_ok": rand.choice([True, False]), "size": rand.randint(1, 9)}
    if roll < 0.35:
        return {}
    if depth == 0 and roll < 0.6:
        return {"$nodeset": [value(rand, 1) for _ in range(rand.randint(0, 4))]}
    if depth == 0 and roll < 0.65:
        return [rand.choice(["a", "b", "c"]) for _ in range(rand.randint(0, 3))]
    if roll < 0.75:
        return rand.uniform(-1e4, 1e4) if rand.random() < 0.5 else rand.randint(-100, 100)
    return rand.choice(SCALARS)


def cases() -> list[dict]:
    rand = random.Random(15)
    found = []
    for _ in range(4000):
        source = rand.choice(TEMPLATES)
        answers = {name: value(rand) for name in "abcx" if rand.random() < 0.9}
        case = {"expr": source, "answers": answers, "current": value(rand, 1)}
        if rand.random() < 0.8:
            case["position"] = rand.randint(1, 5)
        if rand.random() < 0.8:
            case["choice"] = {
                key: value(rand, 1) for key in ("name", "county", "size") if rand.random() < 0.7
            }
        found.append(case)
    return found


def as_python(answers: dict) -> dict:
    return {
        key: expr.Nodeset(v["$nodeset"]) if isinstance(v, dict) and "$nodeset" in v else v
        for key, v in answers.items()
    }


def python_answer(case: dict) -> dict:
    try:
        result = expr.evaluate(
            case["expr"],
            as_python(case["answers"]),
            current=case["current"],
            today=TODAY,
            now=NOW,
            position=case.get("position"),
            choice=case.get("choice"),
        )
    except expr.ExprError:
        return {"error": "ExprError"}
    return {"result": result}


NODE_SCRIPT = """
import { readFileSync } from 'node:fs';
import { ExprError, Nodeset, evaluate } from '%(module)s';
const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const isSet = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && '$nodeset' in v;
const nodesets = (answers) => Object.fromEntries(
  Object.entries(answers).map(([k, v]) => [k, isSet(v) ? new Nodeset(v.$nodeset) : v]));
const out = cases.map((c) => {
  try {
    return { result: evaluate(c.expr, nodesets(c.answers), { current: c.current, today: '%(today)s',
      now: '%(now)s', position: c.position ?? null, choice: c.choice ?? null }) };
  } catch (e) {
    return { error: e instanceof ExprError ? 'ExprError' : String(e) };
  }
});
process.stdout.write(JSON.stringify(out));
"""


def same(got, want) -> bool:
    if isinstance(want, bool) or isinstance(got, bool) or want is None or got is None:
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(got - want) <= 1e-9 * max(1.0, abs(got), abs(want))
    return type(got) is type(want) and got == want


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_twins_agree_on_generated_node_sets_geometry_digests_and_choices(tmp_path):
    generated = cases()
    (tmp_path / "cases.json").write_text(json.dumps(generated), encoding="utf-8")
    script = tmp_path / "run.mjs"
    module = (ROOT / "client_pwa" / "js" / "expr.js").as_uri()
    script.write_text(NODE_SCRIPT % {"module": module, "today": TODAY, "now": NOW})
    done = subprocess.run(
        ["node", str(script), str(tmp_path / "cases.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    js_answers = json.loads(done.stdout)
    failures, kinds = [], {"result": 0, "error": 0}
    for case, got in zip(generated, js_answers, strict=True):
        want = python_answer(case)
        kinds["error" if "error" in want else "result"] += 1
        if "error" in want:
            ok = got.get("error") == "ExprError"
        else:
            ok = "result" in got and same(got["result"], want["result"])
        if not ok:
            failures.append(f"{json.dumps(case, ensure_ascii=False)[:300]} py={want} js={got}")
    assert failures[:5] == []
    assert kinds["result"] > 3000  # mostly answers, not errors


# ---------------------------------------------------------------- geometry against the peers

ENKETO_RADIUS = 6378100


def enketo_area(points: list[tuple[float, float]]) -> float:
    """Enketo's area() (openrosa-xpath-evaluator src/geo.js, Leaflet.draw's spherical formula)."""
    total = 0.0
    for i, (lat1, lon1) in enumerate(points):
        lat2, lon2 = points[(i + 1) % len(points)]
        total += math.radians(lon2 - lon1) * (
            2 + math.sin(math.radians(lat1)) + math.sin(math.radians(lat2))
        )
    return abs(round(total * ENKETO_RADIUS * ENKETO_RADIUS / 2 * 100)) / 100


def haversine(points: list[tuple[float, float]]) -> float:
    total = 0.0
    for (lat1, lon1), (lat2, lon2) in zip(points, points[1:], strict=False):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        a = (
            math.sin((p2 - p1) / 2) ** 2
            + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
        )
        total += 2 * ENKETO_RADIUS * math.asin(math.sqrt(a))
    return total


def test_area_and_distance_within_a_thousandth_of_the_peers():
    rand = random.Random(3)
    for _ in range(300):
        # a field, a courtyard or a village: a convex polygon of 3 to 12 points, 20 m to 5 km
        lat0, lon0 = rand.uniform(18, 48), rand.uniform(75, 134)
        radius = rand.uniform(0.0002, 0.05)
        angles = sorted(rand.uniform(0, 2 * math.pi) for _ in range(rand.randint(3, 12)))
        points = [
            (
                lat0 + radius * math.sin(t),
                lon0 + radius * math.cos(t) / math.cos(math.radians(lat0)),
            )
            for t in angles
        ]
        text = ";".join(f"{lat} {lon} 0 0" for lat, lon in points)
        ours = expr.evaluate("area(${s})", {"s": text}, today=TODAY)
        theirs = enketo_area(points)
        if theirs > 1:
            assert abs(ours - theirs) <= 1e-3 * theirs, (points, ours, theirs)
        trace = expr.evaluate("distance(${s})", {"s": text}, today=TODAY)
        assert abs(trace - haversine(points)) <= 1e-3 * trace + 1e-6, (points, trace)


def test_geopoint_objects_and_text_give_the_same_figures():
    points = [(24.3301, 109.4101), (24.3321, 109.4103), (24.3318, 109.4139), (24.3299, 109.4131)]
    text = "; ".join(f"{lat} {lon} 100 5" for lat, lon in points)
    objects = expr.Nodeset(tuple({"lat": lat, "lon": lon, "accuracy": 5} for lat, lon in points))
    for source in ("area(${p})", "distance(${p})"):
        assert expr.evaluate(source, {"p": text}, today=TODAY) == pytest.approx(
            expr.evaluate(source, {"p": objects}, today=TODAY), rel=1e-12
        )
