"""The indicators the village records feed, as pure functions over plain rows.

Input rows come from storage (`indicator_facility_rows`, `indicator_task_rows`,
`inspections_by_village`); nothing here reads the database or the clock.

Two steps:

1. `village_facts` counts, per village, what the indicators need (plain integers, so they can be
   stored as a snapshot and summed over any set of villages).
2. `report` sums the facts of the villages a viewer may see into township and county rows and
   judges every row against its target (`evaluate`).

Decisions (shown on the page as well):

- **Toilet coverage (卫生厕所普及率 / 无害化卫生厕所普及率) is counted against the household toilets
  registered in the records (the 改厕台账)**, not against the village's household count: the
  records are what inspectors verify, and a household count from the village list is often stale.
  A household toilet counts when its record is active (not retired); it counts as sanitary when
  `sanitary` is true and it is not recorded as out of use (`in_use` false), and as harmless when
  it is also `harmless`. Because a village whose registry misses households would look better
  than it is, the page shows the registered toilets next to the household count
  (台账覆盖 = registered ÷ households) so the gap is visible.
- Targets by county class: class 1 100% / 90%, class 2 98% / 88%, class 3 96% / 85%.
- Village committee seat public toilet: met when the village has an active committee toilet that
  is open to the public and in use. Township and county: every village meets it.
- Rubbish: a village meets it when it has at least one active rubbish point and every one is
  running. A township meets it when every village does and a township transfer station is
  running (村收集—镇转运).
- Fire: each township needs an active micro fire station (微型消防站) and a fire-safety publicity
  point (消防科普宣传点); the county meets it when every township does. Villages only show counts.
- Tidiness: the average score of the zones inspected (each zone's latest score), against
  `tidiness_target` (75 = 良 by default, setting TIDINESS_TARGET).
- Monthly tasks: completion = done ÷ tasks of the month; met when no task is overdue (status
  overdue, or not done after its due date).
"""

from collections.abc import Iterable

TARGETS = {1: (1.00, 0.90), 2: (0.98, 0.88), 3: (0.96, 0.85)}

FACT_KEYS = (
    "villages",
    "households",
    "household_toilets",
    "sanitary",
    "harmless",
    "committee_toilets",
    "committee_ok",
    "rubbish_points",
    "rubbish_running",
    "rubbish_ok",
    "transfer_stations",
    "transfer_running",
    "micro_stations",
    "publicity_points",
    "zones_scored",
    "score_sum",
    "tasks",
    "tasks_done",
    "tasks_overdue",
    "inspections",
)

INDICATORS = (
    ("sanitary", "卫生厕所普及率"),
    ("harmless", "无害化卫生厕所普及率"),
    ("committee", "村委公厕开放"),
    ("rubbish", "垃圾收运正常"),
    ("fire", "微型消防站与宣传点"),
    ("tidiness", "村庄清洁得分"),
    ("tasks", "月度任务完成"),
)


def _true(value) -> bool:
    return value is True or value == 1


def _false(value) -> bool:
    return value is False or value == 0


def _empty() -> dict:
    return dict.fromkeys(FACT_KEYS, 0)


def village_facts(
    villages: Iterable[dict],
    facility_rows: Iterable[dict],
    task_rows: Iterable[dict] = (),
    inspections: dict | None = None,
    *,
    today: str | None = None,
) -> dict[str, dict]:
    """Counts per village code. `today` (YYYY-MM-DD) makes undone tasks past due count overdue."""
    facts = {}
    for v in villages:
        f = _empty()
        f["villages"] = 1
        f["households"] = v.get("households") or 0
        f["inspections"] = (inspections or {}).get(v["code"], 0)
        facts[v["code"]] = f
    committee_open = set()
    for row in facility_rows:
        f = facts.get(row["village_code"])
        if f is None or row.get("status") == "retired":
            continue
        kind, kind_type = row["kind"], row.get("type")
        if kind == "toilet" and kind_type == "household":
            f["household_toilets"] += 1
            if _true(row.get("sanitary")) and not _false(row.get("in_use")):
                f["sanitary"] += 1
                if _true(row.get("harmless")):
                    f["harmless"] += 1
        elif kind == "toilet" and kind_type == "committee":
            f["committee_toilets"] += 1
            if _true(row.get("open_to_public")) and _true(row.get("in_use")):
                committee_open.add(row["village_code"])
        elif kind == "rubbish":
            f["rubbish_points"] += 1
            running = _true(row.get("running"))
            f["rubbish_running"] += running
            if kind_type == "transfer_station":
                f["transfer_stations"] += 1
                f["transfer_running"] += running
        elif kind == "fire" and kind_type == "micro_station":
            f["micro_stations"] += 1
        elif kind == "fire" and kind_type == "publicity_point":
            f["publicity_points"] += 1
        elif kind == "zone" and isinstance(row.get("score"), int | float):
            f["zones_scored"] += 1
            f["score_sum"] += row["score"]
    for row in task_rows:
        f = facts.get(row["village_code"])
        if f is None:
            continue
        n = row.get("n", 1)
        f["tasks"] += n
        if row["status"] == "done":
            f["tasks_done"] += n
        elif row["status"] == "overdue" or (today and row.get("due_on") and row["due_on"] < today):
            f["tasks_overdue"] += n
    for code, f in facts.items():
        f["committee_ok"] = int(code in committee_open)
        points, running = f["rubbish_points"], f["rubbish_running"]
        f["rubbish_ok"] = int(points > 0 and running == points)
    return facts


def add(facts: Iterable[dict]) -> dict:
    """The sum of several villages' (or townships') facts."""
    total = _empty()
    for f in facts:
        for key in FACT_KEYS:
            total[key] += f.get(key, 0)
    return total


def _rate(num, den):
    return num / den if den else None


def _cell(value, target, met, text, detail="") -> dict:
    return {"value": value, "target": target, "met": met, "text": text, "detail": detail}


def _pct(x) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def evaluate(
    f: dict,
    *,
    level: str,
    county_class: int | None,
    tidiness_target: float,
    townships: int = 0,
    townships_fire_ok: int = 0,
    townships_rubbish_ok: int = 0,
) -> dict:
    """Judge one row of facts. `met` is True, False, or None (no data / not judged here)."""
    sanitary_target, harmless_target = TARGETS.get(county_class, (None, None))
    out = {}
    for key, target in (("sanitary", sanitary_target), ("harmless", harmless_target)):
        rate = _rate(f[key], f["household_toilets"])
        met = None if rate is None or target is None else rate >= target - 1e-9
        out[key] = _cell(rate, target, met, _pct(rate), f"{f[key]}/{f['household_toilets']} 户厕")
    if level == "village":
        out["committee"] = _cell(
            f["committee_ok"],
            1,
            bool(f["committee_ok"]),
            "开放" if f["committee_ok"] else ("未开放" if f["committee_toilets"] else "无"),
            f"村委公厕 {f['committee_toilets']} 座",
        )
        out["rubbish"] = _cell(
            _rate(f["rubbish_running"], f["rubbish_points"]),
            1,
            bool(f["rubbish_ok"]),
            f"{f['rubbish_running']}/{f['rubbish_points']}",
            "正常运行/收运点",
        )
        out["fire"] = _cell(
            None,
            None,
            None,
            f"站 {f['micro_stations']} · 点 {f['publicity_points']}",
            "按乡镇考核",
        )
    else:
        committee = _rate(f["committee_ok"], f["villages"])
        out["committee"] = _cell(
            committee,
            1,
            None if committee is None else f["committee_ok"] == f["villages"],
            f"{f['committee_ok']}/{f['villages']} 村",
            "村委公厕开放的村",
        )
        transfer_ok = f["transfer_running"] > 0
        rubbish_met = f["rubbish_ok"] == f["villages"] and transfer_ok
        if level == "county":
            rubbish_met = townships_rubbish_ok == townships
        out["rubbish"] = _cell(
            _rate(f["rubbish_ok"], f["villages"]),
            1,
            rubbish_met if f["villages"] else None,
            f"{f['rubbish_ok']}/{f['villages']} 村",
            f"中转站运行 {f['transfer_running']}/{f['transfer_stations']}",
        )
        if level == "township":
            fire_met = f["micro_stations"] > 0 and f["publicity_points"] > 0
            out["fire"] = _cell(
                int(fire_met),
                1,
                fire_met,
                f"站 {f['micro_stations']} · 点 {f['publicity_points']}",
                "各至少 1 个",
            )
        else:
            out["fire"] = _cell(
                _rate(townships_fire_ok, townships),
                1,
                townships_fire_ok == townships if townships else None,
                f"{townships_fire_ok}/{townships} 乡镇",
                "站、点齐全的乡镇",
            )
    avg = f["score_sum"] / f["zones_scored"] if f["zones_scored"] else None
    out["tidiness"] = _cell(
        avg,
        tidiness_target,
        None if avg is None else avg >= tidiness_target,
        "—" if avg is None else f"{avg:.1f}",
        f"{f['zones_scored']} 个区域",
    )
    done = _rate(f["tasks_done"], f["tasks"])
    out["tasks"] = _cell(
        done,
        None,
        None if not f["tasks"] else f["tasks_overdue"] == 0,
        _pct(done),
        f"{f['tasks_done']}/{f['tasks']} 项，逾期 {f['tasks_overdue']}",
    )
    return out


def report(
    villages: Iterable[dict],
    facts: dict[str, dict],
    *,
    visible: Iterable[str],
    tidiness_target: float,
) -> dict:
    """Rows for the villages in `visible`, their townships, and the counties wholly visible.

    `villages`: every village of the deployment (code, name, township, county, county_class),
    so a township or county row can say whether the viewer sees all of it (`partial`).
    """
    visible = set(visible)
    villages = sorted(villages, key=lambda v: (v["county"], v["township"], v["code"]))
    by_township, by_county = {}, {}
    for v in villages:
        by_township.setdefault((v["county"], v["township"]), []).append(v)
        by_county.setdefault(v["county"], []).append(v)

    def klass(vs):
        classes = {v["county_class"] for v in vs}
        return classes.pop() if len(classes) == 1 else None

    village_rows = [
        {
            "level": "village",
            "code": v["code"],
            "name": v["name"],
            "township": v["township"],
            "county": v["county"],
            "county_class": v["county_class"],
            "facts": facts.get(v["code"], _empty()),
            "cells": evaluate(
                facts.get(v["code"], _empty()),
                level="village",
                county_class=v["county_class"],
                tidiness_target=tidiness_target,
            ),
        }
        for v in villages
        if v["code"] in visible
    ]
    township_rows, fire_ok, rubbish_ok = [], {}, {}
    for (county, township), vs in by_township.items():
        seen = [v for v in vs if v["code"] in visible]
        if not seen:
            continue
        total = add(facts.get(v["code"], _empty()) for v in seen)
        cells = evaluate(
            total, level="township", county_class=klass(vs), tidiness_target=tidiness_target
        )
        fire_ok[(county, township)] = bool(cells["fire"]["met"])
        rubbish_ok[(county, township)] = bool(cells["rubbish"]["met"])
        township_rows.append(
            {
                "level": "township",
                "name": township,
                "county": county,
                "county_class": klass(vs),
                "partial": len(seen) < len(vs),
                "villages": len(seen),
                "facts": total,
                "cells": cells,
            }
        )
    county_rows = []
    for county, vs in by_county.items():
        if not all(v["code"] in visible for v in vs):
            continue  # a county row only for a viewer who sees the whole county
        towns = [key for key in fire_ok if key[0] == county]
        total = add(facts.get(v["code"], _empty()) for v in vs)
        county_rows.append(
            {
                "level": "county",
                "name": county,
                "county_class": klass(vs),
                "partial": False,
                "villages": len(vs),
                "facts": total,
                "cells": evaluate(
                    total,
                    level="county",
                    county_class=klass(vs),
                    tidiness_target=tidiness_target,
                    townships=len(towns),
                    townships_fire_ok=sum(fire_ok[t] for t in towns),
                    townships_rubbish_ok=sum(rubbish_ok[t] for t in towns),
                ),
            }
        )
    return {"villages": village_rows, "townships": township_rows, "counties": county_rows}
