"""The merge rule: observations in, record state and conflicts out.

Pure logic: no I/O. Everything here is a function of the *set* of observations, so every
replica that has seen the same observations holds the same records and the same conflicts,
whatever order they arrived in.

- A field takes the value of the newest observation by (clock, observation id).
- Two observations conflict on a field when their values differ, neither author had seen the
  other, and their wall times are within the conflict window. The clock winner stands meanwhile.
- A conflict is resolved by a later observation of that field whose author had seen both.
- Nothing is deleted: a facility is retired by an observation setting `status` to "retired".

"Author X had seen observation Y" (for a field) means X.base[field] >= Y.clock, or X comes from
the same device as Y and is later: a phone has always seen its own earlier observations, even
if it did not record them in `base`. This keeps two quick successive inspections on one phone
(e.g. a correction) from being flagged as a conflict.

State of one record: {field: {"value": v, "clock": "<encoded clock>", "by": "<observation id>"}}.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sync.clock import Clock, encode

DAY_MS = 24 * 60 * 60 * 1000
DEFAULT_CONFLICT_WINDOW_MS = 3 * DAY_MS
STATUS_FIELD = "status"
RETIRED = "retired"

State = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Observation:
    """What one submission says about one record's fields."""

    id: str
    record_id: str
    clock: Clock
    fields: Mapping[str, Any]
    base: Mapping[str, Clock] = dc_field(default_factory=dict)

    def __post_init__(self) -> None:
        """Fail at construction, not deep inside a merge, on obviously wrong input."""
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("observation id must be a non-empty string")
        if not isinstance(self.clock, Clock):
            raise TypeError("observation clock must be a Clock")
        if not all(isinstance(c, Clock) for c in self.base.values()):
            raise TypeError("observation base values must be Clocks")


@dataclass(frozen=True)
class Conflict:
    """Two unseen-by-each-other observations that set one field to different values."""

    id: str
    record_id: str
    field: str
    a: str  # the smaller observation id
    b: str  # the larger observation id
    values: tuple[Any, Any] = dc_field(hash=False)  # (value from a, value from b)
    winner: str  # the id whose value stands by the clock rule


# --- field values -----------------------------------------------------------------------------


def _key(obs: Observation) -> tuple[Clock, str]:
    """Newest-wins order; the id only breaks (buggy) equal clocks, deterministically."""
    return (obs.clock, obs.id)


def apply(state: Mapping[str, Mapping[str, Any]], obs: Observation) -> State:
    """Return a new state with `obs` folded in; the input state is not modified.

    Newest wins by (clock, observation id), the id only breaking (buggy) equal clocks.
    Encoded clocks sort exactly like clocks, so entries are compared without decoding.
    """
    new: State = dict(state)
    key = (encode(obs.clock), obs.id)
    for name, value in obs.fields.items():
        current = new.get(name)
        if current is None or (current["clock"], current["by"]) < key:
            new[name] = {"value": copy.deepcopy(value), "clock": key[0], "by": obs.id}
    return new


def replay(observations: Iterable[Observation]) -> State:
    """The state of a record built from scratch out of its observations."""
    state: State = {}
    for obs in observations:
        state = apply(state, obs)
    return state


def is_retired(state: Mapping[str, Mapping[str, Any]]) -> bool:
    """Retirement is only a field value; the record and its history stay."""
    entry = state.get(STATUS_FIELD)
    return entry is not None and entry["value"] == RETIRED


# --- conflicts --------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """JSON-equal values compare equal: 1 == 1.0, but true != 1."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _dump(value: Any) -> str:
    """Canonical JSON text of a value."""
    return json.dumps(_canonical(value), sort_keys=True, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """A value's canonical JSON text: JSON-equal values give the same text."""
    return _dump(value)


def same_value(x: Any, y: Any) -> bool:
    """Equality as JSON sees it (Python's True == 1 would hide a real difference)."""
    return _dump(x) == _dump(y)


def saw(obs: Observation, name: str, other: Clock) -> bool:
    """Had the author of `obs` seen the observation stamped `other` for field `name`?"""
    known = obs.base.get(name)
    if known is not None and known >= other:
        return True
    return obs.clock.device == other.device and obs.clock > other


def window_bounds(clock: Clock, window_ms: int) -> tuple[int, int]:
    """Inclusive wall_ms range of observations that could conflict with one at `clock`."""
    return (max(0, clock.wall_ms - window_ms), clock.wall_ms + window_ms)


def conflict_id(record_id: str, name: str, a: str, b: str) -> str:
    """Same record, field and pair of observations: same id, wherever it is computed."""
    text = json.dumps([record_id, name, a, b], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _conflicts_on(x: Observation, y: Observation, name: str, window_ms: int) -> bool:
    """The pairwise rule; symmetric in x and y. Cheap clock tests first: on a busy record most
    pairs are settled by who saw whom before their values need comparing as JSON."""
    return (
        abs(x.clock.wall_ms - y.clock.wall_ms) <= window_ms
        and not saw(x, name, y.clock)
        and not saw(y, name, x.clock)
        and not same_value(x.fields[name], y.fields[name])
    )


def _conflict(x: Observation, y: Observation, name: str) -> Conflict:
    """Describe the pair independently of which one arrived first."""
    a, b = sorted((x, y), key=lambda o: o.id)
    winner = max(a, b, key=_key)
    return Conflict(
        id=conflict_id(a.record_id, name, a.id, b.id),
        record_id=a.record_id,
        field=name,
        a=a.id,
        b=b.id,
        values=(copy.deepcopy(a.fields[name]), copy.deepcopy(b.fields[name])),
        winner=winner.id,
    )


def find_conflicts(
    new: Observation,
    existing: Iterable[Observation],
    window_ms: int = DEFAULT_CONFLICT_WINDOW_MS,
) -> list[Conflict]:
    """Conflicts `new` makes with observations already held, sorted by (field, a, b)."""
    found: dict[str, Conflict] = {}
    for other in existing:
        if other.record_id != new.record_id or other.id == new.id:
            continue
        for name in new.fields.keys() & other.fields.keys():
            if _conflicts_on(new, other, name, window_ms):
                c = _conflict(new, other, name)
                found[c.id] = c
    return sorted(found.values(), key=lambda c: (c.field, c.a, c.b))


def conflict_resolved_by(
    conflict: Conflict,
    clocks_of_a_and_b: tuple[Clock, Clock],
    observations_of_that_field: Iterable[Observation],
) -> str | None:
    """The earliest later observation of the field whose author had seen both sides, if any.

    The resolver must also be newer than both sides, so its value is the one that stands.
    """
    best: Observation | None = None
    for obs in observations_of_that_field:
        if not _resolves(conflict, clocks_of_a_and_b, obs):
            continue
        if best is None or _key(obs) < _key(best):
            best = obs
    return None if best is None else best.id


def _resolves(conflict: Conflict, clocks: tuple[Clock, Clock], obs: Observation) -> bool:
    """Whether `obs` settles `conflict`: same field, saw both sides, and stamped after both."""
    return (
        obs.record_id == conflict.record_id
        and conflict.field in obs.fields
        and obs.id not in (conflict.a, conflict.b)
        and all(saw(obs, conflict.field, c) and obs.clock > c for c in clocks)
    )


# --- a batch at once --------------------------------------------------------------------------


@dataclass
class RecordHistory:
    """What is held of one record that a batch of new observations can touch.

    `held`: every held observation of the record whose wall time is at or after the lowest
    window bound of the batch (`window_bounds`); `open`: its unresolved conflicts, each with the
    clocks of its two sides (which may lie outside `held`).
    """

    state: State
    held: list[Observation]
    open: list[tuple[Conflict, tuple[Clock, Clock]]]


@dataclass
class BatchMerge:
    """What folding a batch into one record changes: the new state, the conflicts the batch
    made (each with the observation that already resolves it, or None), and the previously
    open conflicts it resolved (id -> resolver)."""

    state: State
    conflicts: list[tuple[Conflict, str | None]]
    resolved: dict[str, str]


def merge_batch(
    history: RecordHistory, new: Iterable[Observation], window_ms: int = DEFAULT_CONFLICT_WINDOW_MS
) -> BatchMerge:
    """Fold new observations of one record in, one after another, exactly as storing each and
    merging it against what is held then would (server/push.py's one-at-a-time path), but
    reading the record's history once."""
    state = history.state
    seen = list(history.held)
    still_open = dict((c.id, (c, pair)) for c, pair in history.open)
    made: dict[str, list] = {}
    resolved: dict[str, str] = {}
    for obs in new:
        seen.append(obs)
        state = apply(state, obs)
        lo, hi = window_bounds(obs.clock, window_ms)
        candidates = [o for o in seen if lo <= o.clock.wall_ms <= hi]
        found = find_conflicts(obs, candidates, window_ms)
        clocks = {o.id: o.clock for o in candidates}
        for conflict in found:
            pair = (clocks[conflict.a], clocks[conflict.b])
            by = conflict_resolved_by(conflict, pair, seen)
            made[conflict.id] = [conflict, by]
            if by is None:
                still_open[conflict.id] = (conflict, pair)
        for conflict_id, (conflict, pair) in list(still_open.items()):
            if by := conflict_resolved_by(conflict, pair, [obs]):
                del still_open[conflict_id]
                if conflict_id in made:
                    made[conflict_id][1] = by
                else:
                    resolved[conflict_id] = by
    return BatchMerge(state, [(c, by) for c, by in made.values()], resolved)


# --- a record from scratch --------------------------------------------------------------------


def base_entries(state: Mapping[str, Mapping[str, Any]], observation_ids: Iterable[str]) -> State:
    """The entries of a record's state that no held observation wrote (a registration's or an
    import's initial fields): the floor a recount starts from."""
    ids = set(observation_ids)
    return {name: dict(entry) for name, entry in state.items() if entry["by"] not in ids}


def merge_accepted(
    base: Mapping[str, Mapping[str, Any]],
    accepted: Iterable[Observation],
    window_ms: int = DEFAULT_CONFLICT_WINDOW_MS,
) -> BatchMerge:
    """A record rebuilt from its base entries and the observations that count (a rejected
    submission's do not): its state, and every conflict among them with its resolver or None.

    A function of the set: the observations are folded in by (clock, id), exactly as
    `merge_batch` folds a push, so the result is what a replica that had only ever seen the
    accepted set would hold.
    """
    history = RecordHistory(state=dict(base), held=[], open=[])
    return merge_batch(history, sorted(accepted, key=_key), window_ms)
