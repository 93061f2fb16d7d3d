"""The password policy (GB/T 22239-2019 account rules), pure: no Flask, no database.

A password is accepted when it
- has at least MIN_LENGTH (10) characters;
- uses at least 3 of the 4 character classes: lower-case, upper-case, digit, other;
- does not contain the username, compared case-insensitively (usernames of 3 characters or
  more: a shorter one would forbid ordinary letters);
- is not in the common-password list shipped in server/data/ (see COMMON-PASSWORDS.md there),
  compared case-insensitively, with and without a trailing run of digits and symbols.

`problems()` returns every reason in Chinese (empty when accepted); `check()` raises
PasswordRejected with them joined. server/auth.py's `hash_password` calls `check()`, so every
way of setting a password (CLI, desk, API, admin pages) goes through this one policy.
"""

import functools
import gzip
from pathlib import Path

MIN_LENGTH = 10
MIN_CLASSES = 3
MIN_USERNAME_IN_PASSWORD = 3
COMMON_FILE = Path(__file__).parent / "data" / "common-passwords.txt.gz"


class PasswordRejected(ValueError):
    """The password breaks the policy; `.problems` are the reasons (Chinese)."""

    code = "password_weak"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("；".join(problems))


@functools.cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_FILE, "rt", encoding="utf-8") as f:
        return frozenset(line.strip().lower() for line in f if line.strip())


def character_classes(password: str) -> int:
    """How many of lower, upper, digit and other the password uses."""
    lower = any(c.islower() for c in password)
    upper = any(c.isupper() for c in password)
    digit = any(c.isdigit() for c in password)
    other = any(not (c.islower() or c.isupper() or c.isdigit()) for c in password)
    return lower + upper + digit + other


def is_common(password: str) -> bool:
    """In the list as it is, or once a trailing run of digits/symbols is cut ("Password2026!")."""
    words = common_passwords()
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*.?-_+= ")
    return lowered in words or (len(stem) >= 4 and stem in words)


def problems(password: str, username: str | None = None) -> list[str]:
    found = []
    if len(password) < MIN_LENGTH:
        found.append(f"密码至少 {MIN_LENGTH} 位")
    if character_classes(password) < MIN_CLASSES:
        found.append("密码须包含小写字母、大写字母、数字、其他符号中的至少 3 类")
    name = (username or "").strip().lower()
    if len(name) >= MIN_USERNAME_IN_PASSWORD and name in password.lower():
        found.append("密码不能包含用户名")
    if is_common(password):
        found.append("密码过于常见，容易被猜中，请换一个")
    return found


def check(password: str, username: str | None = None) -> None:
    """Raise PasswordRejected unless the password follows the policy."""
    found = problems(password, username)
    if found:
        raise PasswordRejected(found)
