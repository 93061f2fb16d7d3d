"""The photo stamp's verification code (media/stamp_code.py): derivation, spelling, checking."""

import hmac

import pytest

from media import stamp_code
from media.stamp_code import ALPHABET, display, make_code, normalize, verify

SECRET = stamp_code.derive_secret("test")
FACTS = {
    "sha256": "ab" * 32,
    "submission_id": "7d1c7f4e-2b8a-4d0e-9a7a-3f1f1c2b9e01",
    "received_at": "2026-11-20T02:31:00+00:00",
    "facility_id": "fac-yunyu-toilet-1",
}


def test_a_code_is_ten_unambiguous_characters_shown_in_groups():
    code = make_code(SECRET, **FACTS)
    assert len(code) == 10 and set(code) <= set(ALPHABET)
    assert not set("ILOU") & set(ALPHABET)
    shown = display(code)
    assert shown == f"{code[:4]}-{code[4:8]}-{code[8:]}"
    assert make_code(SECRET, **FACTS) == code  # deterministic


def test_the_code_checks_out_for_its_own_facts_in_any_spelling():
    code = make_code(SECRET, **FACTS)
    shown = display(code)
    for typed in (code, shown, shown.lower(), f"  {shown[:4]} {shown[5:9]} {shown[10:]} "):
        assert verify(SECRET, typed, **FACTS), typed
    # O for 0 and I/L for 1, as people misread them
    confusable = code.replace("0", "O").replace("1", "l")
    assert normalize(confusable) == code


def test_a_forged_code_fails():
    code = make_code(SECRET, **FACTS)
    forged = "".join(ALPHABET[(ALPHABET.index(c) + 7) % 32] for c in code)
    assert not verify(SECRET, forged, **FACTS)
    assert not verify(SECRET, "K7QF-3M2X-PA", **FACTS) or code == "K7QF3M2XPA"
    # the same facts under another secret give another code
    other = stamp_code.derive_secret("another key")
    assert not verify(other, code, **FACTS)
    assert not verify(SECRET, make_code(other, **FACTS), **FACTS)


@pytest.mark.parametrize("position", range(10))
def test_a_code_with_one_character_changed_fails(position):
    code = make_code(SECRET, **FACTS)
    changed = ALPHABET[(ALPHABET.index(code[position]) + 1) % 32]
    altered = code[:position] + changed + code[position + 1 :]
    assert not verify(SECRET, altered, **FACTS)


@pytest.mark.parametrize("field", sorted(FACTS))
def test_the_code_of_one_use_fails_for_any_other_fact(field):
    code = make_code(SECRET, **FACTS)
    other = {**FACTS, field: FACTS[field] + "x"}
    assert make_code(SECRET, **other) != code
    assert not verify(SECRET, code, **other)


def test_a_code_for_another_submission_fails():
    mine = make_code(SECRET, **FACTS)
    theirs = make_code(SECRET, **{**FACTS, "submission_id": "another-submission"})
    assert mine != theirs
    assert not verify(SECRET, theirs, **FACTS)


@pytest.mark.parametrize(
    "text", ["", "K7QF-3M2X", "K7QF-3M2X-PAX", "K7QF-3M2X-P!", "K7QF-3M2X-PU", None, 123, "x" * 65]
)
def test_anything_but_ten_code_characters_is_no_code(text):
    assert normalize(text) is None
    assert not verify(SECRET, text if isinstance(text, str) else "", **FACTS)


def test_the_comparison_is_constant_time(monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(stamp_code.hmac, "compare_digest", spy)
    assert verify(SECRET, display(make_code(SECRET, **FACTS)), **FACTS)
    assert not verify(SECRET, "0000000000", **FACTS)
    assert len(seen) == 2


def test_fields_cannot_run_into_each_other():
    with pytest.raises(ValueError):
        make_code(SECRET, **{**FACTS, "submission_id": "a\nb"})


def test_the_secret_is_the_setting_or_derived_from_the_session_key_under_its_own_label():
    derived = stamp_code.stamp_secret({"SECRET_KEY": "test", "STAMP_SECRET": ""})
    assert derived == SECRET and derived != b"test"
    assert stamp_code.stamp_secret({"SECRET_KEY": "test", "STAMP_SECRET": "s3cret"}) == b"s3cret"
    pinned = stamp_code.stamp_secret({"SECRET_KEY": "new", "STAMP_SECRET": "hex:" + SECRET.hex()})
    assert pinned == SECRET
    assert stamp_code.key_id(SECRET) != stamp_code.key_id(b"s3cret")
    with pytest.raises(RuntimeError):
        stamp_code.stamp_secret({"SECRET_KEY": None, "STAMP_SECRET": ""})
