"""The first secretary's monthly tasks, made from templates (pure: no storage, no clock)."""

import calendar
from datetime import date


def month_tasks(village_code: str, month: str, templates: list[dict]) -> list[dict]:
    """Rows for one village and month ("YYYY-MM"); the same input always gives the same ids."""
    year, mon = (int(p) for p in month.split("-"))
    last_day = calendar.monthrange(year, mon)[1]
    rows = []
    for template in templates:
        per_month = template.get("per_month", 1)
        for n in range(1, per_month + 1):
            due = date(year, mon, 15 if per_month == 2 and n == 1 else last_day)
            title = dict(template["title"])
            if per_month > 1:
                title = {"zh": f"{title['zh']}（第{n}次）", "en": f"{title['en']} ({n})"}
            rows.append(
                {
                    "id": f"task-{village_code}-{month}-{template['key']}-{n}",
                    "village_code": village_code,
                    "month": month,
                    "template": template["key"],
                    "title": title,
                    "due_on": due.isoformat(),
                    "state": {},
                }
            )
    return rows
