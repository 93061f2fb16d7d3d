"""The supervisors' spot-check sample, drawn from a seed (pure: no storage, no clock).

Rule (recorded with every draw as `RULE`, together with its seed, so a draw can be audited and
reproduced exactly):

- every submission whose risk score is at or above the threshold is picked ("high_risk");
- of the others, each village's share is drawn at random ("random"): ceil(share × n) of the
  village's n low-risk submissions, so a village with any low-risk submission has at least one
  checked when share > 0;
- the draw for a village uses its own generator, `random.Random(f"{seed}:{village_code}")`,
  over the village's low-risk ids in sorted order, so the result depends only on the seed and
  the set of candidates, never on the order they were read in or on other villages.

A missing risk score (evidence not judged yet) counts as 0.
"""

import math
import random
from collections import defaultdict
from collections.abc import Iterable

RULE_VERSION = 1


def rule(share: float, threshold: int) -> dict:
    """The rule as stored with a draw."""
    return {
        "version": RULE_VERSION,
        "share": share,
        "threshold": threshold,
        "high_risk": "risk_score >= threshold: always picked",
        "random": "per village: ceil(share * n) of the n others, "
        "random.Random(f'{seed}:{village_code}').sample(sorted ids)",
        "pool": "complete, unreviewed submissions not considered by an earlier draw",
    }


def draw_sample(submissions: Iterable[dict], seed: int, share: float, threshold: int) -> list[dict]:
    """Decide for every candidate whether it is picked, and why.

    `submissions`: dicts with "id", "village_code" and "risk_score" (None = 0). Returns one
    dict per candidate, sorted by id: {"id", "village_code", "risk_score", "picked", "reason"},
    reason "high_risk", "random" or None.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1, not {share!r}")
    out, low_by_village = {}, defaultdict(list)
    for sub in submissions:
        score = sub.get("risk_score") or 0
        member = {
            "id": sub["id"],
            "village_code": sub["village_code"],
            "risk_score": score,
            "picked": False,
            "reason": None,
        }
        if sub["id"] in out:
            raise ValueError(f"submission {sub['id']} is twice in the pool")
        out[sub["id"]] = member
        if score >= threshold:
            member.update(picked=True, reason="high_risk")
        else:
            low_by_village[sub["village_code"]].append(sub["id"])
    for village, ids in low_by_village.items():
        ids.sort()
        count = min(len(ids), math.ceil(share * len(ids)))
        for sub_id in random.Random(f"{seed}:{village}").sample(ids, count):
            out[sub_id].update(picked=True, reason="random")
    return [out[k] for k in sorted(out)]


def picked_ids(members: Iterable[dict]) -> list[str]:
    return sorted(m["id"] for m in members if m["picked"])
