"""Two-factor login with TOTP (RFC 6238, 30-second steps, 6 digits) for supervisors and admins.

- The secret is made at enrolment (pyotp.random_base32, 160 bits), shown once as a QR code
  (segno, inline SVG) and as text, and kept in `users.totp_secret` encrypted with Fernet under a
  key derived from SECRET_KEY (HMAC-SHA256 with its own label). A copy of the database alone
  does not give the second factor away; changing SECRET_KEY makes every enrolment unreadable,
  and those users must enrol again (`villagecheck` admins clear it with `clear_totp`).
- A code is accepted for the current step and one step either side (clock drift), and each
  step works once (`users.totp_last_step`).
- Ten recovery codes (xxxx-xxxx, 40 random bits each) are shown once; only their SHA-256 is
  kept (they are random, not chosen by people, so a fast hash is enough), and each works once.
- TOTP_REQUIRED_ROLES names the roles that must enrol: such a user is sent to the enrolment
  page after their password, before any other desk page.
"""

import base64
import hashlib
import hmac
import secrets

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken

RECOVERY_CODES = 10
ISSUER = "乡村巡检"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


def _fernet(secret_key: str) -> Fernet:
    key = hmac.new(secret_key.encode(), b"villagecheck totp secret v1", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def new_secret() -> str:
    return pyotp.random_base32()


def seal(secret: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(secret.encode()).decode()


def unseal(sealed: str, secret_key: str) -> str | None:
    """The secret, or None when it was sealed under another SECRET_KEY."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def matching_step(secret: str, code: str, at_timestamp: float) -> int | None:
    """The time step whose code this is (current or one either side), or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = int(at_timestamp) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.at(candidate * totp.interval), code):
            return candidate
    return None


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code as an inline <svg> element (no XML declaration)."""
    return segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")


def new_recovery_codes() -> list[str]:
    def one() -> str:
        chars = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        return f"{chars[:4]}-{chars[4:]}"

    return [one() for _ in range(RECOVERY_CODES)]


def normalise_recovery(code: str) -> str:
    raw = "".join(c for c in code.lower() if c.isalnum())
    return f"{raw[:4]}-{raw[4:]}"


def hash_recovery(code: str) -> str:
    return hashlib.sha256(normalise_recovery(code).encode()).hexdigest()


def looks_like_recovery(code: str) -> bool:
    return sum(c.isalpha() for c in code) > 0


def required_roles(config) -> set[str]:
    return {r.strip() for r in str(config.get("TOTP_REQUIRED_ROLES", "")).split(",") if r.strip()}
