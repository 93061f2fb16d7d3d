"""Login throttling shared by the API login and the desk login page.

Every try is counted *before* its password is checked, in one write transaction, so parallel
guesses cannot all slip past the limit. Three kinds of bucket, keyed by a digest (a guessed
username is never stored, and unknown names are throttled exactly like known ones):

- `pair` (username, address): free tries up to LOGIN_MAX_FAILURES, then a wait that doubles
  with each failure, up to LOGIN_LOCK_MINUTES. A stranger slows only their own address.
- `user` (username, every address): past LOGIN_USER_MAX_FAILURES the tries of every address
  are spaced out, at most LOGIN_USER_DELAY_MAX_SECONDS apart, which slows guessing from many
  addresses without locking the real user out for long;
- `good` (username, address that logged in as that user within 30 days): exempt from the
  `user` slowdown, so the real user's usual machine is not slowed by strangers at all.

Refused tries get a wait in seconds (429 + Retry-After); no server thread ever sleeps. Buckets
are pruned once quiet for the window, so the table stays bounded whatever names are tried.
Crossing into throttling writes a `login_throttled` audit entry for admins.
"""

import hashlib
import math
from dataclasses import dataclass

from flask import current_app, request

from .context import now, now_iso

GOOD_DAYS = 30


@dataclass(frozen=True)
class Policy:
    free: int
    max_wait_s: float
    user_free: int
    user_max_wait_s: float

    @classmethod
    def from_config(cls, config) -> "Policy":
        return cls(
            free=config["LOGIN_MAX_FAILURES"],
            max_wait_s=config["LOGIN_LOCK_MINUTES"] * 60,
            user_free=config["LOGIN_USER_MAX_FAILURES"],
            user_max_wait_s=config["LOGIN_USER_DELAY_MAX_SECONDS"],
        )


def wait_after(failures: int, free: int, cap: float) -> float:
    """Seconds to wait after `failures` counted failures: none while free, then 1, 2, 4 … cap."""
    if failures < free:
        return 0.0
    return float(min(cap, 2 ** min(failures - free, 40)))


def decide(pair: dict | None, user: dict | None, known_good: bool, at: float, policy: Policy):
    """(wait, None) to refuse this try, or (0, updates) with the buckets to save.

    Pure: `pair` and `user` are the stored buckets (or None); the try is counted as a failure
    in `updates` and taken back by `succeeded()` if the password turns out right.
    """
    waits = [pair["next_at"] - at] if pair else []
    if user and not known_good:
        waits.append(user["next_at"] - at)
    wait = max(waits, default=0.0)
    if wait > 0:
        return wait, None
    pair_failures = (pair["failures"] if pair else 0) + 1
    user_failures = (user["failures"] if user else 0) + 1
    updates = {
        "pair": {
            "failures": pair_failures,
            "last_at": at,
            "next_at": at + wait_after(pair_failures, policy.free, policy.max_wait_s),
        },
        "user": {
            "failures": user_failures,
            "last_at": at,
            "next_at": at + wait_after(user_failures, policy.user_free, policy.user_max_wait_s),
        },
    }
    return 0.0, updates


def client_address() -> str:
    """The caller's address (behind a trusted proxy, ProxyFix has already applied
    X-Forwarded-For; see create_app)."""
    return request.remote_addr or "-"


def _key(kind: str, username: str, address: str = "") -> str:
    return hashlib.sha256(f"{kind}\0{username}\0{address}".encode()).hexdigest()


@dataclass
class Attempt:
    """One counted login try; call succeeded() if the password was right."""

    store: object
    username: str
    address: str
    wait: float

    @property
    def refused(self) -> bool:
        return self.wait > 0

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.wait))

    def succeeded(self) -> None:
        """Take this try back from the counts and remember the address as known-good."""
        at = now().timestamp()
        pair, user = _key("pair", self.username, self.address), _key("user", self.username)
        with self.store.write():
            row = self.store.throttle_rows([user]).get(user)
            if row:
                self.store.save_throttle(
                    user,
                    "user",
                    failures=max(0, row["failures"] - 1),
                    last_at=row["last_at"],
                    next_at=row["next_at"],
                )
            self.store.delete_throttle(pair)
            good = _key("good", self.username, self.address)
            self.store.save_throttle(good, "good", failures=0, last_at=at, next_at=0)


def count_attempt(store, username: str) -> Attempt:
    """Count a login try for `username` from this request's address, or refuse it."""
    policy = Policy.from_config(current_app.config)
    address = client_address()
    at = now().timestamp()
    keys = {
        "pair": _key("pair", username, address),
        "user": _key("user", username),
        "good": _key("good", username, address),
    }
    with store.write():
        store.prune_throttle(
            now=at, failures_before=at - policy.max_wait_s, good_before=at - GOOD_DAYS * 86400
        )
        rows = store.throttle_rows(keys.values())
        wait, updates = decide(
            rows.get(keys["pair"]), rows.get(keys["user"]), keys["good"] in rows, at, policy
        )
        if updates is None:
            return Attempt(store, username, address, wait)
        for kind, values in updates.items():
            store.save_throttle(keys[kind], kind, **values)
        if updates["pair"]["failures"] == policy.free or updates["user"]["failures"] == (
            policy.user_free
        ):
            store.audit(
                "login_throttled",
                at=now_iso(),
                entity="user",
                entity_id=username[:64],
                detail={
                    "address": address,
                    "address_failures": updates["pair"]["failures"],
                    "user_failures": updates["user"]["failures"],
                },
            )
    return Attempt(store, username, address, 0.0)
