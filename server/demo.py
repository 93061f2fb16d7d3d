"""Loading the demo county (server/demo/county.json) into an empty database."""

import json
from datetime import datetime
from pathlib import Path

from forms.definitions import load_task_templates
from sync.clock import Clock, encode

from .auth import hash_password
from .storage import Storage
from .tasks import month_tasks

DEMO_FILE = Path(__file__).parent / "demo" / "county.json"
DEMO_DEVICE = "demo"


def demo_data() -> dict:
    return json.loads(DEMO_FILE.read_text(encoding="utf-8"))


def load_demo(store: Storage, *, now: datetime, data: dict | None = None) -> dict:
    """Villages, users, facilities and this month's tasks; returns the data loaded."""
    data = data or demo_data()
    at = now.isoformat(timespec="milliseconds")
    clock = encode(Clock(int(now.timestamp() * 1000) - 30 * 86_400_000, 0, DEMO_DEVICE))
    with store.write():
        store.upsert_villages(data["villages"], at=at)
        for user in data["users"]:
            scope = user.get("scope", {})
            user_id = store.create_user(
                username=user["username"],
                password_hash=hash_password(user["password"], username=user["username"]),
                role=user["role"],
                display_name=user["display_name"],
                at=at,
                scope_township=scope.get("township"),
                scope_county=scope.get("county"),
            )
            store.assign(user_id, user.get("villages", []), at=at)
        for facility in data["facilities"]:
            store.insert_facility(
                {
                    "id": facility["id"],
                    "village_code": facility["village"],
                    "kind": facility["kind"],
                    "name": facility["name"],
                    "lat": facility["lat"],
                    "lon": facility["lon"],
                    "created_clock": clock,
                    "state": {
                        k: {"value": v, "clock": clock, "by": "demo"}
                        for k, v in facility["fields"].items()
                    },
                },
                at=at,
            )
        templates = load_task_templates()
        month = now.strftime("%Y-%m")
        for village in data["villages"]:
            for row in month_tasks(village["code"], month, templates):
                store.insert_task(row, at=at)
    return data
