"""The server side of a push: check each item, then store the good ones and merge them.

Checking needs only reads and pure functions (forms/ validates answers, sync/ decides
identity); storing happens in one write transaction. The submissions of a batch are stored by
set: the records they touch, their histories and the photos held are read once, and rows are
written with executemany. If that fails, each item is stored again in a savepoint of its own,
so one bad item never loses the good ones and a failure never leaves half an item behind.

On PostgreSQL, pushes run side by side: the transaction first locks every record the batch
touches (in one order, so two pushes never deadlock), so merges of one record run one after
another and give what a serial run gives.

What an item may touch is decided at store time, inside the transaction, against what is
stored: never against what the batch claims (a "new facility" reusing another village's id is
refused, and no later item of the batch may use an id that was refused or invalid). The whole
answer, the server's clock included, is built and encoded before the transaction commits, so
nothing is stored by a push that answers 5xx.
"""

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from flask import current_app

from forms.compiler import compile_form
from media.datum import DATUMS, to_wgs84
from sync import protocol
from sync.clock import Clock, decode, encode, skew_ms, tick, valid_device
from sync.merge import Conflict, Observation, RecordHistory, merge_batch, window_bounds

from .evidence import judge_complete
from .requests import MESSAGES, unusable_code
from .storage import DatabaseBusy, DatabaseUnavailable, Storage

SERVER_DEVICE = "server"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_FORM_VERSION = 2**31 - 1
MAX_REF_LEN = 200  # form ids and record ids
HOUR_MS = 3600 * 1000
#: Where a position registered on a phone may come from: its own fix, or a point picked on a map.
PHONE_SOURCES = ("browser", "map_pick")


def clock_ahead_ms(config) -> int:
    """How far ahead of server time a clock may be before it is re-stamped."""
    return int(config["CLOCK_AHEAD_MAX_HOURS"] * HOUR_MS)


FACILITY_KINDS = {
    "toilet": ("toilet_type",),
    "rubbish": ("rubbish_type",),
    "fire": ("fire_type",),
    "zone": ("zone_type",),
}


@dataclass
class Item:
    """One item of a batch on its way through the push."""

    index: int
    raw: dict
    type: str
    id: str | None
    result: dict = field(default_factory=dict)
    row: dict | None = None
    photos: list = field(default_factory=list)
    observation: Observation | None = None
    record_type: str | None = None
    form: object = None
    clock: Clock | None = None
    missing: list | None = None


class PushRefused(Exception):
    """The batch as a whole cannot be taken (e.g. too many items); nothing was written."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Caller:
    user_id: int
    villages: frozenset
    device_id: str


def _err(code, zh, en=None):
    return {"code": code, "message": {"zh": zh, "en": en or zh}}


def _invalid(item: Item, errors: dict) -> None:
    item.result = {"status": protocol.INVALID, "errors": errors}


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _clock(value):
    try:
        return decode(value)
    except (TypeError, ValueError):
        return None


def _number(value, lo, hi) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi


def _ref(value) -> bool:
    """A form or record id as an item may name it."""
    return isinstance(value, str) and 0 < len(value) <= MAX_REF_LEN


def check_facility(item: Item, caller: Caller, *, now_iso: str) -> None:
    """A facility registered on a phone: shape, scope and its initial fields."""
    raw, errors = item.raw, {}
    village = raw.get("village")
    if not isinstance(village, str) or village not in caller.villages:
        errors["village"] = [_err("village_forbidden", "您没有该村的权限", "not your village")]
    kind = raw.get("kind") if isinstance(raw.get("kind"), str) else None
    if kind not in FACILITY_KINDS:
        errors["kind"] = [_err("choice", "设施类型不正确", "unknown facility kind")]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        errors["name"] = [_err("required", "请填写设施名称（100 字以内）", "name required")]
    if not _number(raw.get("lat"), -90, 90) or not _number(raw.get("lon"), -180, 180):
        errors["position"] = [_err("required", "请记录设施位置", "position required")]
    datum, source = raw.get("datum", "wgs84"), raw.get("source", "browser")
    if datum not in DATUMS:
        errors["datum"] = [
            _err("choice", "坐标系不正确（只能是 wgs84、cgcs2000、gcj02 或 bd09）", "unknown datum")
        ]
    if source not in PHONE_SOURCES:
        errors["source"] = [
            _err(
                "choice", "位置来源不正确（只能是 browser 或 map_pick）", "unknown position source"
            )
        ]
    clock = _clock(raw.get("clock"))
    if clock is None:
        errors["clock"] = [_err("type", "时钟格式不正确", "bad clock")]
    fields = raw.get("fields", {})
    allowed = FACILITY_KINDS.get(kind, ())
    if not isinstance(fields, dict) or any(k not in allowed for k in fields):
        errors["fields"] = [
            _err("unknown_field", f"登记时只能填写：{', '.join(allowed)}", "unknown field")
        ]
    elif not all(_ref(v) and len(v) <= 64 for v in fields.values()):
        errors["fields"] = [_err("type", "设施类型填写不正确", "a type must be a short text")]
    if errors:
        return _invalid(item, errors)
    item.clock = clock
    item.row = {
        "id": item.id,
        "village_code": raw["village"],
        "kind": kind,
        "name": name.strip(),
        # Stored in WGS-84 with the datum the phone gave it in (media/datum.py).
        **dict(zip(("lat", "lon"), to_wgs84(raw["lat"], raw["lon"], datum), strict=True)),
        "datum": datum,
        "position_source": source,
        "created_by": caller.user_id,
        "created_clock": raw["clock"],
        "content_hash": protocol.content_hash(raw),
        "state": {
            k: {"value": v, "clock": raw["clock"], "by": item.id}
            for k, v in {**fields, "status": "active"}.items()
        },
    }


class FormCache:
    """Compiled forms by (id, version), read from storage once per process."""

    def __init__(self):
        self._compiled = {}

    def get(self, store: Storage, form_id, version):
        key = (form_id, version)
        if key not in self._compiled:
            definition = store.form_definition(form_id, version)
            if definition is None:
                return None
            self._compiled[key] = compile_form(definition)
        return self._compiled[key]


def check_submission(item: Item, caller: Caller, store: Storage, forms: FormCache) -> None:
    """A submission: its form version, its shape and every answer.

    The record it is about is checked at store time (`_record_errors`), against what is stored.
    """
    raw = item.raw
    form_id, version = raw.get("form"), raw.get("version")
    if (
        not _ref(form_id)
        or not isinstance(version, int)
        or isinstance(version, bool)
        or not 0 < version <= MAX_FORM_VERSION
    ):
        return _invalid(item, {"form": [_err("unknown_form", "表单或版本不正确", "bad form")]})
    form = forms.get(store, form_id, version)
    if form is None:
        return _invalid(
            item,
            {
                "form": [
                    _err(
                        "unknown_form", "服务器没有该表单版本", f"unknown form {form_id} v{version}"
                    )
                ]
            },
        )
    errors = {}
    clock = _clock(raw.get("clock"))
    if clock is None:
        errors["clock"] = [_err("type", "时钟格式不正确", "bad clock")]
    observed = _parse_time(raw.get("observed_at"))
    if observed is None:
        errors["observed_at"] = [
            _err(
                "type",
                "检查时间格式不正确（需带时区）",
                "observed_at must be ISO 8601 with an offset",
            )
        ]
    base_raw = raw.get("base", {})
    base = {}
    if not isinstance(base_raw, dict):
        errors["base"] = [_err("type", "base 格式不正确", "base must be an object")]
    else:
        for name, value in base_raw.items():
            if (decoded := _clock(value)) is None:
                errors["base"] = [_err("type", "base 时钟格式不正确", f"bad clock for {name}")]
            else:
                base[name] = decoded
    record_type = "task" if form.target == "task" else "facility"
    record_id = raw.get("record")
    if not _ref(record_id):
        errors["record"] = [_err("unknown_record", "找不到要检查的设施或任务", "unknown record")]
    answers = raw.get("answers")
    if not isinstance(answers, dict):
        errors["answers"] = [_err("type", "答案格式不正确", "answers must be an object")]
    replaces = raw.get("replaces")
    if replaces is not None and (
        not isinstance(replaces, str) or not UUID.fullmatch(replaces) or replaces == item.id
    ):
        errors["replaces"] = [BAD_REPLACES]
    if errors:
        return _invalid(item, errors)
    validation = form.validate(answers, observed_on=observed.date(), observed_at=observed)
    if validation.errors:
        return _invalid(item, validation.errors)
    item.record_type = record_type
    item.form = form
    item.clock = clock
    item.photos = validation.photos
    item.row = {
        "id": item.id,
        "form_id": form_id,
        "form_version": version,
        "record_id": record_id,
        "record_type": record_type,
        "author_id": caller.user_id,
        "device_id": caller.device_id,
        "clock": raw["clock"],
        "observed_at": raw["observed_at"],
        "answers": validation.answers,
        "content_hash": protocol.content_hash(raw),
        "replaces": replaces,
    }
    item.observation = Observation(
        id=item.id, record_id=record_id, clock=clock, fields=validation.updates, base=base
    )
    if validation.dropped:
        item.result["dropped"] = list(validation.dropped)


def _record_errors(record: dict | None, caller: Caller, form) -> dict:
    """May this caller report on this stored record with this form? Empty when yes."""
    if record is None:
        return {"record": [_err("unknown_record", "找不到要检查的设施或任务", "unknown record")]}
    if record["village_code"] not in caller.villages:
        return {"record": [_err("village_forbidden", "您没有该村的权限", "not your village")]}
    if form.target not in ("task", "facility") and record["kind"] != form.target:
        return {
            "record": [
                _err(
                    "wrong_kind",
                    "该表单不适用于这个设施",
                    f"form {form.id} is for {form.target} facilities",
                )
            ]
        }
    return {}


BAD_REPLACES = _err(
    "bad_replaces",
    "被替代的检查记录不存在，或不是同一设施的检查",
    "replaces must name an earlier submission about the same record",
)


def _replaces_errors(store: Storage, row: dict, caller: Caller) -> dict:
    """A fix-and-resend names the submission it replaces: one about the same record, in the
    caller's villages (issue 12). Empty when it names none or a good one."""
    if not row.get("replaces"):
        return {}
    old = store.submission(row["replaces"])
    if (
        old is None
        or old["record_id"] != row["record_id"]
        or old["village_code"] not in caller.villages
    ):
        return {"replaces": [BAD_REPLACES]}
    return {}


RECORD_REFUSED = _err(
    "record_refused",
    "该设施在本批中未被接受，不能对它提交检查",
    "the record was refused or invalid earlier in this batch",
)


STORE_FAILED = _err(
    "server_error",
    "服务器暂时无法保存这条记录，稍后会自动重新上传",
    "the server could not store this item now; it will be sent again",
)


def _unusable_errors(raw: dict) -> dict:
    """Per field, the values the server cannot hold (see server/requests.py)."""
    errors = {}
    for name, value in raw.items():
        if code := unusable_code(value):
            errors[name] = [_err(code, MESSAGES[code], f"{name}: {code}")]
    return errors


def read_batch(body: dict, *, max_items: int) -> tuple[str, int | None, list[Item]]:
    """The envelope: device id, the phone's wall time, and the items in order."""
    device_id = body.get("device_id")
    if not valid_device(device_id):
        raise PushRefused(400, "invalid_device_id", "设备编号不正确")
    device_time = body.get("device_time_ms")
    if device_time is not None and not _number(device_time, 0, 10**13):
        raise PushRefused(400, "invalid", "device_time_ms 格式不正确")
    raw_items = body.get("items")
    if not isinstance(raw_items, list):
        raise PushRefused(400, "invalid", "items 必须是列表")
    if len(raw_items) > max_items:
        raise PushRefused(413, "batch_too_large", f"每批最多 {max_items} 条，请分批上传")
    items = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raw = {"value": raw}
        kind, item_id = raw.get("type"), raw.get("id")
        kind = kind if kind in ("facility", "submission") else None
        valid_id = isinstance(item_id, str) and UUID.fullmatch(item_id)
        item = Item(index, raw, kind, item_id if valid_id else None)
        if kind is None:
            _invalid(
                item,
                _unusable_errors(raw)
                or {
                    "type": [_err("type", "未知的记录类型", "type must be facility or submission")]
                },
            )
        elif item.id is None:
            _invalid(item, {"id": [_err("type", "编号必须是 UUID", "id must be a UUID")]})
        elif errors := _unusable_errors(raw):
            _invalid(item, errors)
        items.append(item)
    seen = set()
    for item in items:
        if item.result.get("status") is None and item.id in seen:
            _invalid(
                item,
                {
                    "id": [
                        _err(
                            "duplicate_in_batch",
                            "同一批中编号重复",
                            "the same id twice in one batch",
                        )
                    ]
                },
            )
        seen.add(item.id)
    return device_id, device_time, items


def process(
    store: Storage,
    body: dict,
    caller_user: dict,
    villages,
    *,
    config,
    now_iso: str,
    now_ms: int,
    forms: FormCache,
) -> dict:
    """Check and store one batch; returns the whole answer: a result per item, skew and clock."""
    device_id, device_time, items = read_batch(body, max_items=config["PUSH_BATCH_MAX"])
    caller = Caller(caller_user["id"], frozenset(villages), device_id)
    skew = skew_ms(int(device_time), now_ms) if device_time is not None else None
    pending = [i for i in items if not i.result.get("status")]
    for item in (i for i in pending if i.type == "facility"):
        check_facility(item, caller, now_iso=now_iso)
    for item in (i for i in pending if i.type == "submission"):
        check_submission(item, caller, store, forms)
    clocks = _ServerClock(store, now_ms, clock_ahead_ms(config))
    window_ms = int(config["CONFLICT_WINDOW_HOURS"] * 3600 * 1000)
    envelope_clock = _clock(body.get("clock"))
    with store.write():
        # The records this batch registers or reports on, all locked before anything is read,
        # so concurrent pushes of one record merge one after another (PostgreSQL).
        store.lock_records(
            i.id if i.type == "facility" else i.row["record_id"] for i in pending if i.row
        )
        store.record_device(
            device_id=device_id,
            user_id=caller.user_id,
            clock=encode(envelope_clock) if envelope_clock else None,
            skew_ms=skew,
            at=now_iso,
        )
        stored_f = store.facility_hashes(i.id for i in pending if i.type == "facility")
        stored_s = store.submission_hashes(i.id for i in pending if i.type == "submission")
        blocked = {i.id for i in items if i.id and i.result.get("status") == protocol.INVALID}
        by_set = []
        for item in sorted(pending, key=lambda i: (i.type != "facility", i.index)):
            if item.row is None:
                continue
            if item.type == "submission" and item.row["record_id"] in blocked:
                _invalid(item, {"record": [RECORD_REFUSED]})
                blocked.add(item.id)
                continue
            stored = (stored_f if item.type == "facility" else stored_s).get(item.id)
            outcome = protocol.classify(stored, item.row["content_hash"])
            if outcome == protocol.REFUSED:
                item.result = {
                    "status": outcome,
                    "errors": {
                        "id": [
                            _err(
                                "id_reused",
                                "该编号已用于不同的内容，服务器不会覆盖",
                                "this id was already used for different content",
                            )
                        ]
                    },
                }
                blocked.add(item.id)
                continue
            if outcome == protocol.ACCEPTED and item.type == "facility":
                with store.write():
                    _store_facility(store, item, clocks, now_iso)
            elif outcome == protocol.ACCEPTED:
                by_set.append(item)
                continue
            item.result["status"] = outcome
        store_submissions = _SubmissionWriter(store, caller, clocks, skew, window_ms, now_iso)
        store_submissions.by_set(by_set)
        for item in by_set:
            item.result.setdefault("status", protocol.ACCEPTED)
        _conflict_status(store, by_set)
        _photo_status(store, items)
        answer = {
            "results": [
                {"id": item.id, "type": item.type, "index": item.index, **item.result}
                for item in items
            ],
            "skew_ms": skew,
            "clock": encode(clocks.now()),
        }
        json.dumps(answer, ensure_ascii=False, allow_nan=False).encode()  # fails before commit
    return answer


class _ServerClock:
    """The server's clock for one push: what a far-ahead report is re-stamped with."""

    def __init__(self, store: Storage, now_ms: int, ahead_ms: int):
        self.store, self.now_ms, self.ahead_ms = store, now_ms, ahead_ms

    def now(self) -> Clock:
        return next_server_clock(self.store, self.now_ms, self.ahead_ms)

    def too_far_ahead(self, item: Item) -> bool:
        return protocol.too_far_ahead(item.clock, self.now_ms, self.ahead_ms)

    def admit(self, item: Item) -> Clock:
        """The clock the item's fields are ordered at; marks the result when it was re-stamped."""
        if not self.too_far_ahead(item):
            return item.clock
        clock = protocol.restamp(item.clock, self.now())
        item.result["clock_adjusted"] = True
        item.result["stored_clock"] = encode(clock)
        return clock


def _store_facility(store: Storage, item: Item, clocks: _ServerClock, now_iso) -> None:
    """Insert a facility registered on a phone; a far-ahead clock is re-stamped."""
    clock = encode(clocks.admit(item))
    state = {k: {**entry, "clock": clock} for k, entry in item.row["state"].items()}
    store.insert_facility({**item.row, "state": state}, at=now_iso)


class _SubmissionWriter:
    """Stores a push's accepted submissions and merges their observations."""

    def __init__(self, store, caller, clocks, skew, window_ms, now_iso):
        self.store, self.caller, self.clocks = store, caller, clocks
        self.skew, self.window_ms, self.now_iso = skew, window_ms, now_iso

    def by_set(self, items: list[Item]) -> None:
        """All at once; if that fails, one savepoint per item: an item that fails again is
        answered `failed` (nothing of it is stored; the phone sends it again later), the others
        are stored.

        A report whose clock is far ahead is stored on its own: its re-stamped clock comes from
        the server's clock, which must already count the batch's earlier observations.
        """
        ahead = [i for i in items if self.clocks.too_far_ahead(i)]
        together = [i for i in items if not self.clocks.too_far_ahead(i)]
        try:
            if together:
                with self.store.write():
                    self.store_all(together)
        except (DatabaseBusy, DatabaseUnavailable):
            raise
        except Exception:
            current_app.logger.warning("push: storing by set failed; storing one by one")
            ahead = items
            for item in items:
                item.result.pop("status", None)
                item.result.pop("errors", None)
        for item in ahead:
            try:
                with self.store.write():
                    self.store_all([item])
            except (DatabaseBusy, DatabaseUnavailable):
                raise
            except Exception:
                current_app.logger.exception("push: item %s could not be stored", item.id)
                item.result = {"status": protocol.FAILED, "errors": {"_item": [STORE_FAILED]}}

    def store_all(self, items: list[Item]) -> None:
        """Insert the submissions and merge their observations into the records they are about.

        Each record is read here, inside the transaction: its stored village decides the scope.
        A far-ahead clock is re-stamped (docs/PROTOCOL.md, Clocks), and the submission then
        keeps the larger of the two skews, so that the evidence checks flag it even when the
        phone sent no (or a false) device time.
        """
        store = self.store
        records = _records(store, ((i.record_type, i.row["record_id"]) for i in items))
        missing = set(store.missing_media(p["sha256"] for i in items for p in i.photos))
        rows, merged = [], []
        for item in items:
            record = records.get((item.record_type, item.row["record_id"]))
            if errors := _record_errors(record, self.caller, item.form) or _replaces_errors(
                store, item.row, self.caller
            ):
                _invalid(item, errors)
                continue
            skew = self.skew
            clock = self.clocks.admit(item)
            if item.result.get("clock_adjusted"):
                clock_skew = skew_ms(item.clock.wall_ms, self.clocks.now_ms)
                if skew is None or abs(clock_skew) > abs(skew):
                    skew = clock_skew
            obs = item.observation
            item.observation = replace(obs, clock=clock, base=protocol.cap_base(obs.base, clock))
            item.missing = sorted({p["sha256"] for p in item.photos} & missing)
            row = {
                **item.row,
                "village_code": record["village_code"],
                "received_at": self.now_iso,
                "skew_ms": skew,
                "state": "received" if item.missing else "complete",
            }
            rows.append((row, item.photos))
            if item.observation.fields:
                merged.append(item)
        store.insert_submissions(rows)
        for record_type in sorted({i.record_type for i in merged}):
            observations = [i.observation for i in merged if i.record_type == record_type]
            merge_observations(store, record_type, observations, self.window_ms, at=self.now_iso)
        complete = [row["id"] for row, _ in rows if row["state"] == "complete"]
        if complete:
            judge_complete(store, complete, at=self.now_iso)


def _records(store: Storage, keys) -> dict[tuple[str, str], dict]:
    """Records by (record type, id), read in one query per type."""
    ids: dict[str, set[str]] = {}
    for record_type, record_id in keys:
        ids.setdefault(record_type, set()).add(record_id)
    return {
        (record_type, r["id"]): r
        for record_type, wanted in ids.items()
        for r in store.records_by_ids(record_type, wanted)
    }


def next_server_clock(store: Storage, now_ms: int, ahead_ms: int) -> Clock:
    """The server's hybrid logical clock: after every observation it holds.

    Observations more than `ahead_ms` ahead of now are ignored: the server never adopts a clock
    it has not vouched for, so one stored by older code before re-stamping existed (or written
    by hand) cannot drag it towards the end of the clock range, and pull and push keep working.
    """
    newest = store.newest_clock(max_wall_ms=now_ms + ahead_ms)
    return tick(decode(newest) if newest else None, now_ms, SERVER_DEVICE)


def apply_observation(
    store: Storage, record_type: str, obs: Observation, window_ms: int, *, at: str
) -> None:
    """Store one observation and merge it (a server observation: a supervisor's conflict
    resolution, a task marked overdue)."""
    merge_observations(store, record_type, [obs], window_ms, at=at)


def merge_observations(
    store: Storage, record_type: str, observations: list[Observation], window_ms: int, *, at: str
) -> None:
    """Store observations, merge them into their records and update the records' conflicts.

    Every writer of record fields comes through here. Each record's history (its observations
    from the earliest conflict window on, its open conflicts) is read once, whatever the number
    of observations; `sync.merge.merge_batch` folds them in as one at a time would.
    """
    by_record: dict[str, list[Observation]] = {}
    for obs in observations:
        by_record.setdefault(obs.record_id, []).append(obs)
    lo = min(window_bounds(o.clock, window_ms)[0] for o in observations)
    records = {r["id"]: r for r in store.records_by_ids(record_type, by_record)}
    held: dict[str, list[Observation]] = {}
    for row in store.observations_since(by_record, lo):
        held.setdefault(row["record_id"], []).append(_observation(row))
    open_rows = store.open_conflicts_of(by_record)
    sides = store.observation_clocks({r[side] for r in open_rows for side in ("a", "b")})
    store.insert_observations(
        [
            {
                "id": obs.id,
                "record_id": obs.record_id,
                "clock": str(obs.clock),
                "wall_ms": obs.clock.wall_ms,
                "fields": dict(obs.fields),
                "base": {k: str(v) for k, v in obs.base.items()},
            }
            for obs in observations
        ]
    )
    states, conflicts, resolved = [], [], {}
    for record_id, new in by_record.items():
        record = records[record_id]
        history = RecordHistory(
            record["state"],
            held.get(record_id, []),
            [
                (_stored_conflict(row), (decode(sides[row["a"]]), decode(sides[row["b"]])))
                for row in open_rows
                if row["record_id"] == record_id
            ],
        )
        result = merge_batch(history, new, window_ms)
        states.append(
            {"id": record_id, "state": result.state, "village_code": record["village_code"]}
        )
        conflicts += [conflict_row(c, by) for c, by in result.conflicts]
        resolved.update(result.resolved)
    store.set_record_states(record_type, states, at=at)
    store.insert_conflicts(conflicts, at=at)
    store.resolve_conflicts(resolved)
    # Both sides' authors learn that their values are (no longer) in conflict: pull `outcomes`.
    sides = {row[side] for row in conflicts for side in ("a", "b")}
    sides |= {row[side] for row in open_rows if row["id"] in resolved for side in ("a", "b")}
    store.log_outcomes(sides, at=at)


def _observation(row: dict) -> Observation:
    return Observation(
        id=row["id"],
        record_id=row["record_id"],
        clock=decode(row["clock"]),
        fields=row["fields"],
        base={k: decode(v) for k, v in row["base"].items()},
    )


def _stored_conflict(row: dict) -> Conflict:
    return Conflict(
        id=row["id"],
        record_id=row["record_id"],
        field=row["field"],
        a=row["a"],
        b=row["b"],
        values=(row["a_value"], row["b_value"]),
        winner=row["winner"],
    )


def conflict_row(conflict: Conflict, resolved_by: str | None) -> dict:
    """A merge conflict as storage keeps it (push and the recount after a review)."""
    return {
        "id": conflict.id,
        "record_id": conflict.record_id,
        "field": conflict.field,
        "a": conflict.a,
        "b": conflict.b,
        "a_value": conflict.values[0],
        "b_value": conflict.values[1],
        "winner": conflict.winner,
        "resolved_by": resolved_by,
    }


def _conflict_status(store: Storage, items: list[Item]) -> None:
    """A stored submission whose values are in an open conflict says so in its result:
    `conflict`, `conflict_fields`, `lost_fields` (docs/PROTOCOL.md, Outcomes)."""
    stored = [i.id for i in items if i.result.get("status") == protocol.ACCEPTED]
    for outcome in store.outcomes(stored):
        if outcome["conflict"]:
            item = next(i for i in items if i.id == outcome["submission_id"])
            item.result.update(
                conflict=True,
                conflict_fields=outcome["conflict_fields"],
                lost_fields=outcome["lost_fields"],
            )


def _photo_status(store: Storage, items: list[Item]) -> None:
    """Accepted and duplicate submissions list the photos the server still lacks."""
    for item in items:
        if item.type != "submission" or item.result.get("status") not in (
            protocol.ACCEPTED,
            protocol.DUPLICATE,
        ):
            continue
        if item.result["status"] == protocol.DUPLICATE and not item.photos:
            continue
        missing = item.missing
        if missing is None:
            missing = store.missing_media(p["sha256"] for p in item.photos)
        if missing:
            item.result["missing"] = missing
            if item.result["status"] == protocol.ACCEPTED:
                item.result["status"] = protocol.WAITING
