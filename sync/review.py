"""Supervisors' decisions on a submission, as a pure rule.

A decision moves a submission to a new state; rejecting or ordering a re-inspection needs a
reason, because the inspector reads it on the phone and must know what to fix.
"""

# What a supervisor and an exported spreadsheet call each submission state.
STATE_NAMES = {
    "received": "照片未齐",
    "complete": "待审核",
    "approved": "已通过",
    "rejected": "已退回",
    "reinspection_requested": "要求复查",
}

STATES = {
    "approve": "approved",
    "reject": "rejected",
    "reinspect": "reinspection_requested",
}


def decide(decision: object, reason: object) -> tuple[str, str | None]:
    """(new state, cleaned reason); ValueError with a Chinese message when not allowed.

    Both come straight from a request body, so any JSON value must give an answer, not a crash.
    """
    if not isinstance(decision, str) or decision not in STATES:
        raise ValueError("审核结论必须是 通过、退回 或 要求复查")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("原因必须是文字")
    reason = (reason or "").strip() or None
    if decision != "approve" and not reason:
        raise ValueError("退回或要求复查时必须填写原因")
    if reason and len(reason) > 500:
        raise ValueError("原因不能超过 500 字")
    return STATES[decision], reason
