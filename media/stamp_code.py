"""The verification code of a stamped photo: pure functions, no Flask, no SQL.

Each use of a photo by a submission gets a short code the server derives with its secret from
what the stamp attests: the photo's SHA-256, the submission, the time the server had it (its
"received" time) and the facility (the submission's record). Anyone can read the code off a
stamped photo; only the server can make one, and `verify` recomputes it from the stored facts,
so a code typed in by hand, changed by one character, copied onto another record's photo or
planted in the database without the secret does not check out.

The code is HMAC-SHA256 truncated to 50 bits, written as 10 characters of Crockford's base32
(digits and capitals without I, L, O, U) and shown grouped `K7QF-3M2X-PA`. Reading it back is
forgiving: case, spaces and dashes do not matter, and O/o read as 0, I/i/L/l as 1 (the letters
the alphabet leaves out because they look like those digits).

The secret: `stamp_secret(config)` is STAMP_SECRET when set (`hex:…` for raw bytes), otherwise
HMAC(SECRET_KEY) under a label of its own, so the session key is never used directly and the
stamp key can be pinned separately before SECRET_KEY is rotated. `key_id` names a secret
without revealing it, so a code issued under a former secret can be told apart from a forged
one.
"""

from __future__ import annotations

import hashlib
import hmac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
LENGTH = 10  # characters: 50 bits
GROUPS = (4, 4, 2)
LABEL = b"villagecheck photo stamp v1"
_READ_AS = {"O": "0", "I": "1", "L": "1"}
_IGNORED = " -_\t\u3000\u2010\u2011\u2012\u2013\u2014\u2015\uff0d"


def derive_secret(secret_key: str | bytes) -> bytes:
    """The stamp secret derived from the app's SECRET_KEY under a label of its own."""
    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hmac.new(key, LABEL, hashlib.sha256).digest()


def stamp_secret(config) -> bytes:
    """STAMP_SECRET if set, else derived from SECRET_KEY (see the module docstring)."""
    explicit = config.get("STAMP_SECRET") or ""
    if isinstance(explicit, str) and explicit.startswith("hex:"):
        return bytes.fromhex(explicit[4:])  # a pinned derived key (docs/SETTINGS.md)
    if explicit:
        return explicit.encode() if isinstance(explicit, str) else bytes(explicit)
    if not config.get("SECRET_KEY"):
        raise RuntimeError("no STAMP_SECRET and no SECRET_KEY to derive it from")
    return derive_secret(config["SECRET_KEY"])


def key_id(secret: bytes) -> str:
    """8 hex digits naming a secret (not enough to guess it)."""
    return hmac.new(secret, b"key id", hashlib.sha256).hexdigest()[:8]


def message(*, sha256: str, submission_id: str, received_at: str, facility_id: str) -> bytes:
    """What the code attests, one field a line (no field may hold a newline)."""
    fields = (sha256, submission_id, received_at, facility_id)
    for field in fields:
        if not isinstance(field, str) or "\n" in field:
            raise ValueError("stamp fields are strings without newlines")
    return b"\n".join([LABEL, *(f.encode() for f in fields)])


def make_code(
    secret: bytes, *, sha256: str, submission_id: str, received_at: str, facility_id: str
) -> str:
    """The canonical code: 10 characters of the alphabet, no dashes."""
    digest = hmac.new(
        secret,
        message(
            sha256=sha256,
            submission_id=submission_id,
            received_at=received_at,
            facility_id=facility_id,
        ),
        hashlib.sha256,
    ).digest()
    bits = int.from_bytes(digest[:8], "big") >> (64 - 5 * LENGTH)
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(LENGTH)))


def display(code: str) -> str:
    """`K7QF3M2XPA` -> `K7QF-3M2X-PA`."""
    out, at = [], 0
    for size in GROUPS:
        out.append(code[at : at + size])
        at += size
    return "-".join(out)


def normalize(text: object) -> str | None:
    """The canonical code a person typed or pasted, or None if it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    out = []
    for ch in text.upper():
        if ch in _IGNORED:
            continue
        ch = _READ_AS.get(ch, ch)
        if ch not in ALPHABET:
            return None
        out.append(ch)
    return "".join(out) if len(out) == LENGTH else None


def verify(
    secret: bytes,
    code: str,
    *,
    sha256: str,
    submission_id: str,
    received_at: str,
    facility_id: str,
) -> bool:
    """Whether `code` (any accepted spelling) is the code of these facts; constant time."""
    canonical = normalize(code) or ""
    expected = make_code(
        secret,
        sha256=sha256,
        submission_id=submission_id,
        received_at=received_at,
        facility_id=facility_id,
    )
    return hmac.compare_digest(canonical.encode(), expected.encode())
