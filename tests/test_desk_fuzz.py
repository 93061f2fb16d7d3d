"""Desk pages' query parameters: odd values give a page or a 4xx, never a 500 (issue 8, #9)."""

import re

import pytest
from conftest import PASSWORDS
from desk_helpers import desk_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.supervisor import _int_arg

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Sent raw (already percent-encoded where needed): lone surrogates as CESU bytes, invalid UTF-8.
NASTY = [
    "9" * 30,
    "9" * 5000,
    "-9223372036854775809",
    "18446744073709551616",
    "%C2%B2",  # ²
    "%D9%A2%D9%A0%D9%A2%D9%A6-%D9%A1%D9%A1",  # ٢٠٢٦-١١ (Arabic-Indic digits)
    "%ED%A0%80",  # a lone surrogate, as a phone might send it
    "%FF%FE",
    "%00",
    "2026-11%0A",
    "0000-01",
    "9999-12",
    "1e9",
    "0x10",
    "-1",
    "",
    "%20",
]
PAGES = {
    "/desk/queue": ["page", "township", "village", "form", "flag", "state", "sampled"],
    "/desk/tasks": ["month"],
    "/desk/conflicts": ["show"],
    "/desk/indicators": ["month"],
    "/desk/exports": ["month", "village"],
    "/desk/exports/forms/toilet.csv": ["village", "month"],
    "/desk/exports/forms/toilet.xlsx": ["village", "month"],
    "/desk/exports/facilities.geojson": ["village", "kind"],
    "/desk/exports/villages/450222101001/photos.zip": ["month"],
    "/desk/submissions/nope": ["next"],
}


@pytest.fixture
def admin(client, store):
    desk_session(client, store, "admin")
    return client


@pytest.mark.parametrize("path", sorted(PAGES))
def test_nasty_query_values_never_give_a_server_error(admin, path):
    for name in PAGES[path]:
        for value in NASTY:
            with admin.get(f"{path}?{name}={value}") as response:
                assert response.status_code < 500, (path, name, value, response.text[:300])


def test_a_page_number_beyond_64_bits_is_an_empty_page_not_a_crash(admin):
    response = admin.get("/desk/queue?state=all&page=" + "9" * 30)
    assert response.status_code == 200
    assert "第" in response.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=40))
def test_any_text_in_any_queue_filter_is_a_page(admin, value):
    for name in PAGES["/desk/queue"]:
        response = admin.get("/desk/queue", query_string={name: value})
        assert response.status_code == 200, (name, value)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=50) | st.integers().map(str))
def test_int_arg_is_always_a_small_positive_int(app, value):
    with app.test_request_context(query_string={"page": value}):
        page = _int_arg("page")
    assert 1 <= page <= 2**31


@pytest.mark.parametrize(
    "target", ["/%0Afoo", "/%0D%0ASet-Cookie:%20x=1", "//evil.example", "/%5Cevil.example"]
)
def test_a_strange_next_after_login_goes_home(client, target):
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post(
        f"/login?next={target}",
        data={"username": "admin", "password": PASSWORDS["admin"], "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/desk"
