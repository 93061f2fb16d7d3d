"""Who may call what, on which village: every route of the app × the 5 demo roles × 5 villages.

The table MATRIX names every rule of `app.url_map` (API, desk pages, PWA files), so a new route
fails `test_every_route_is_in_the_matrix` until someone says who may call it and how its scope
is probed. For each route and each role (and an anonymous caller):

- a call the role may make on a village in its scope succeeds and shows that village's data;
- any other call is refused (API 401/403/404, desk pages 403/404 or a redirect to the login
  page), and a refused write leaves the data and the photo store exactly as they were;
- no answer, allowed or refused, names a record of a village outside the caller's scope.

The world: each demo village has a facility with two conflicting inspections (one with its
photos uploaded, one still waiting for a photo), so every kind of id exists in every village.
"""

import base64
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from attack_helpers import app_rules, data_fingerprint
from conftest import Phone, app_on, photo, sha, submission, toilet_answers
from test_supervisor import CSRF, jpeg, upload
from test_xlsform import small_form
from werkzeug.security import generate_password_hash

from server.demo import demo_data
from server.storage import connect

DEMO = demo_data()
VILLAGES = [v["code"] for v in DEMO["villages"]]
ROLES = ("inspector", "inspector2", "secretary", "supervisor", "admin")
ANON = "anonymous"


def _scope(user: dict) -> frozenset:
    if "villages" in user:
        return frozenset(user["villages"])
    township = user.get("scope", {}).get("township")
    return frozenset(v["code"] for v in DEMO["villages"] if township in (None, v["township"]))


SCOPE = {u["username"]: _scope(u) for u in DEMO["users"]}
SCOPE[ANON] = frozenset()
ROLE = {u["username"]: u["role"] for u in DEMO["users"]}
DESK_ROLES = {"supervisor", "admin"}


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    """Ids of every kind of record in every village, and the callers' credentials."""

    tokens: dict = field(default_factory=dict)
    facility: dict = field(default_factory=dict)
    submission: dict = field(default_factory=dict)  # photos all in
    waiting: dict = field(default_factory=dict)  # one photo still to upload
    photo: dict = field(default_factory=dict)  # bytes, uploaded
    pending: dict = field(default_factory=dict)  # bytes, not uploaded yet
    conflict: dict = field(default_factory=dict)
    second_token_id: int = 0  # the inspector's second phone

    def markers(self, village: str) -> set[str]:
        """Strings that only an answer about this village may contain."""
        return {
            village,
            self.facility[village],
            self.submission[village],
            self.waiting[village],
            sha(self.photo[village]),
            sha(self.pending[village]),
            self.conflict[village],
        }


def _owner(village: str) -> str:
    return next(r for r in ("inspector", "inspector2") if village in SCOPE[r])


def _cheap_passwords(db_path: Path) -> None:
    """The demo passwords under a fast hash: this suite logs in a few hundred times."""
    store = connect(db_path)
    with store.write():
        for user in DEMO["users"]:
            store.q(
                "UPDATE users SET password_hash = :hash WHERE username = :username",
                hash=generate_password_hash(user["password"], "pbkdf2:sha256:1000"),
                username=user["username"],
            )
    store.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory, demo_db):
    """The world, built once through the API; each test gets a copy of its files."""
    folder = tmp_path_factory.mktemp("scope-world")
    shutil.copy(demo_db, folder / "vc.db")
    _cheap_passwords(folder / "vc.db")
    client = app_on(folder).test_client()
    world = World()
    phones = {r: Phone(client, r) for r in ROLES}
    world.tokens = {r: p.token for r, p in phones.items()}
    second = {r: Phone(client, r) for r in ("inspector", "inspector2")}
    me = client.get("/api/v1/auth/tokens", headers=second["inspector"].headers).json
    world.second_token_id = next(t["id"] for t in me["tokens"] if t["current"])
    for n, village in enumerate(VILLAGES):
        owner, other = phones[_owner(village)], second[_owner(village)]
        fid = next(
            f["id"] for f in DEMO["facilities"] if f["village"] == village and f["kind"] == "toilet"
        )
        world.facility[village] = fid
        world.photo[village], world.pending[village] = jpeg(100 + n), jpeg(200 + n)
        done = submission(
            fid,
            owner.clock(minutes=1),
            answers=toilet_answers(
                photo_outside=[photo(sha(world.photo[village]))],
                photo_inside=[photo(sha(world.photo[village]))],
            ),
        )
        waiting = submission(
            fid,
            other.clock(minutes=2),
            answers=toilet_answers(
                sanitary=False, photo_outside=[photo(sha(world.pending[village]))]
            ),
        )
        assert owner.push([done]).status_code == 200
        assert other.push([waiting]).status_code == 200
        upload(client, owner.headers, world.photo[village])
        world.submission[village], world.waiting[village] = done["id"], waiting["id"]
    store = connect(folder / "vc.db")
    for village in VILLAGES:
        conflict, *_ = store.conflicts(record_id=world.facility[village])
        world.conflict[village] = conflict["id"]
        assert store.submission(world.submission[village])["state"] == "complete"
    store.q("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return folder, world


@dataclass
class Ctx:
    """One copy of the world with its own app."""

    app: object
    folder: Path
    world: World
    browsers: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        return data_fingerprint(self.folder / "vc.db", self.folder / "media")

    def api(self, role: str):
        headers = {} if role == ANON else {"Authorization": f"Bearer {self.world.tokens[role]}"}
        return self.app.test_client(), headers

    def desk(self, role: str):
        """A browser of this role, logged in if the pages let the role in; and its CSRF token."""
        if role not in self.browsers:
            self.browsers[role] = desk_login(self.app.test_client(), role)
        return self.browsers[role]


def desk_login(client, role: str):
    """(client, CSRF token or None) after trying the login form as this role."""
    if role == ANON:
        return client, None
    page = client.get("/login").get_data(as_text=True)
    password = next(u["password"] for u in DEMO["users"] if u["username"] == role)
    client.post(
        "/login",
        data={"username": role, "password": password, "csrf_token": CSRF.search(page)[1]},
    )
    home = client.get("/desk")
    token = CSRF.search(home.get_data(as_text=True)) if home.status_code == 200 else None
    return client, token and token[1]


@pytest.fixture
def fresh(template, tmp_path):
    """A factory of independent copies of the world (writes in one never reach another)."""
    folder, world = template

    def make() -> Ctx:
        copy = tmp_path / uuid.uuid4().hex
        shutil.copytree(folder, copy)
        return Ctx(app_on(copy), copy, world)

    return make


# -- probes: one call of a route by a role, on a village or on the caller's whole scope -------


@dataclass(frozen=True)
class Entry:
    """A route's row of the matrix.

    roles: who may call it (None: public, anyone including anonymous callers).
    probe: (ctx, role, village) -> (status, body); `village` is None for routes that are not
        about one village (lists, the caller's own tokens).
    per_village: call the probe once per village (allowed iff the village is in scope).
    writes: refused calls must leave the data untouched (checked by fingerprint).
    lists: the answer of an allowed call must name every village of the caller's scope.
    """

    roles: frozenset | None
    probe: object
    per_village: bool = False
    writes: bool = False
    lists: bool = False


def _text(response) -> tuple[int, str]:
    """Status and body; a redirect to the login page counts as 401 (its body only echoes the
    address asked for)."""
    status, body = response.status_code, response.get_data().decode("utf-8", "replace")
    response.close()
    if status in (301, 302, 303) and response.location.split("?")[0].endswith("/login"):
        return 401, ""
    return status, body


def api_get(url):
    def probe(ctx, role, village):
        client, headers = ctx.api(role)
        return _text(client.get(url(ctx.world, village), headers=headers))

    return probe


def desk_get(url):
    def probe(ctx, role, village):
        client, _ = ctx.desk(role)
        return _text(client.get(url(ctx.world, village)))

    return probe


def desk_post(url, data):
    def probe(ctx, role, village):
        client, csrf = ctx.desk(role)
        form = {**data(ctx.world, village), "csrf_token": csrf or ""}
        return _text(client.post(url(ctx.world, village), data=form))

    return probe


def probe_resolve_record(ctx, role, village):
    """Settle every open conflict of the village's facility, each with its first candidate."""
    from server.resolve import by_field, candidates, choice_key

    client, csrf = ctx.desk(role)
    record = ctx.world.facility[village]
    store = connect(ctx.folder / "vc.db")
    try:
        fields = by_field(store.open_conflicts_of([record]))
    finally:
        store.close()
    form = {f"value:{f}": choice_key(candidates(cs)[0]) for f, cs in fields.items()}
    form["csrf_token"] = csrf or ""
    return _text(client.post(f"/desk/records/{record}/conflicts", data=form))


def probe_login(ctx, role, village):
    client, _ = ctx.api(role)
    if role == ANON:
        response = client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})
        assert response.status_code == 401
        return 200, response.get_data(as_text=True)
    password = next(u["password"] for u in DEMO["users"] if u["username"] == role)
    response = client.post("/api/v1/auth/login", json={"username": role, "password": password})
    assert set(response.json["villages"]) == SCOPE[role]
    return _text(response)


def probe_change_password(ctx, role, village):
    """Public (a phone told `password_change_required` has no token): the caller's own
    credentials; a weak new password is refused before anything is written."""
    client = ctx.app.test_client()
    if role == ANON:
        body = {"username": "x", "password": "y", "new_password": "Zz-1234567890"}
        response = client.post("/api/v1/auth/password", json=body)
        assert response.status_code == 401
        return 200, response.get_data(as_text=True)
    password = next(u["password"] for u in DEMO["users"] if u["username"] == role)
    body = {"username": role, "password": password, "new_password": "short"}
    response = client.post("/api/v1/auth/password", json=body)
    assert response.json["error"]["code"] == "password_weak"
    return 200, response.get_data(as_text=True)


def probe_login_code(ctx, role, method):
    """Public, but without a right password a moment ago it only leads back to the login."""
    client, csrf = ctx.desk(role)
    response = client.open("/login/code", method=method, data={"csrf_token": csrf or ""})
    assert response.status_code == 302 and response.location.endswith("/login")
    return 200, ""


def probe_desk_login(ctx, role):
    client, csrf = desk_login(ctx.app.test_client(), role)
    assert (csrf is not None) == (role in DESK_ROLES)
    return 200, ""


def probe_desk_logout(ctx, role):
    client, csrf = ctx.desk(role)
    response = client.post("/logout", data={"csrf_token": csrf or ""})
    if csrf is None:
        return _text(response)
    assert response.status_code == 302
    status, _ = _text(client.get("/desk"))
    assert status == 401, "the session outlived the logout"
    return 200, ""


def probe_me(ctx, role, village):
    client, headers = ctx.api(role)
    response = client.get("/api/v1/auth/me", headers=headers)
    if response.status_code == 200:
        assert set(response.json["villages"]) == SCOPE[role]
    return _text(response)


def probe_tokens(ctx, role, village):
    """Only the caller's own tokens are listed."""
    client, headers = ctx.api(role)
    response = client.get("/api/v1/auth/tokens", headers=headers)
    if response.status_code == 200:
        store = connect(ctx.folder / "vc.db")
        owners = {
            store.scalar(
                "SELECT u.username FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = :id",
                id=t["id"],
            )
            for t in response.json["tokens"]
        }
        store.close()
        assert owners == {role}
    return _text(response)


def probe_revoke(ctx, role, village):
    """Revoke the inspector's second phone: only the inspector may."""
    token_id = ctx.world.second_token_id
    client, headers = ctx.api(role)
    response = client.delete(f"/api/v1/auth/tokens/{token_id}", headers=headers)
    store = connect(ctx.folder / "vc.db")
    revoked = store.scalar("SELECT revoked_at FROM tokens WHERE id = :id", id=token_id)
    assert (revoked is not None) == (response.status_code == 200)
    store.close()
    return _text(response)


def probe_logout(ctx, role, village):
    client, headers = ctx.api(role)
    return _text(client.post("/api/v1/auth/logout", headers=headers))


def _push_one(ctx, role, item, field, stored):
    """Push one item as `role`: refused outside the scope (`field` village_forbidden, counted as
    403), else stored with status `stored`."""
    client, headers = ctx.api(role)
    response = client.post(
        "/api/v1/sync/push", json={"device_id": f"matrix-{role}", "items": [item]}, headers=headers
    )
    if response.status_code != 200:
        return _text(response)
    result = response.json["results"][0]
    if result["status"] == "invalid":
        assert result["errors"][field][0]["code"] == "village_forbidden", result
        return 403, response.get_data(as_text=True)
    assert result["status"] == stored, result
    return _text(response)


def probe_push(ctx, role, village):
    """A new inspection of the village's facility: accepted in scope, refused outside."""
    item = submission(ctx.world.facility[village], f"1763604900000-0001-matrix-{role}")
    return _push_one(ctx, role, item, "record", "waiting_for_photos")


def probe_register(ctx, role, village):
    """A new facility in the village."""
    item = {
        "type": "facility",
        "id": str(uuid.uuid4()),
        "village": village,
        "kind": "toilet",
        "name": "矩阵测试户厕",
        "lat": 24.7,
        "lon": 109.3,
        "clock": f"1763604900000-0001-matrix-{role}",
        "fields": {"toilet_type": "household"},
    }
    return _push_one(ctx, role, item, "village", "accepted")


def probe_push_both(ctx, role, village):
    """Both kinds of push item; they must agree."""
    first = probe_register(ctx, role, village)
    second = probe_push(ctx, role, village)
    assert first[0] == second[0], (first[0], second[0])
    return second[0], first[1] + second[1]


def probe_upload(ctx, role, village):
    client, headers = ctx.api(role)
    data = ctx.world.pending[village]
    response = client.patch(
        f"/api/v1/media/{sha(data)}",
        data=data[:1000],
        headers={
            **headers,
            "Upload-Offset": "0",
            "Upload-Length": str(len(data)),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    return _text(response)


def probe_review(ctx, role, village):
    client, headers = ctx.api(role)
    response = client.post(
        f"/api/v1/submissions/{ctx.world.submission[village]}/review",
        json={"decision": "reject", "reason": "矩阵测试"},
        headers=headers,
    )
    return _text(response)


def probe_pull(ctx, role, village):
    client, headers = ctx.api(role)
    response = client.get("/api/v1/sync/pull", query_string={"limit": 2000}, headers=headers)
    if response.status_code == 200:
        body = response.json
        seen = {v["code"] for v in body["villages"]}
        seen |= {r["village"] for r in body["facilities"] + body["tasks"]}
        assert seen <= SCOPE[role]
    return _text(response)


def probe_verify(ctx, role, village):
    """Look up the code of the village's photo at /desk/verify (photo stamps)."""
    store = connect(ctx.folder / "vc.db")
    code = store.scalar(
        "SELECT code FROM photo_codes WHERE submission_id = :id", id=ctx.world.submission[village]
    )
    store.close()
    assert code, "the photo's ingest gives it a code"
    client, _ = ctx.desk(role)
    return _text(client.get("/desk/verify", query_string={"code": code}))


# -- the admin pages (issue 13) ---------------------------------------------------------------


def _user_id(ctx, username: str) -> int:
    store = connect(ctx.folder / "vc.db")
    try:
        return store.user(username=username)["id"]
    finally:
        store.close()


def admin_user_get(suffix=""):
    def probe(ctx, role, village):
        client, _ = ctx.desk(role)
        return _text(client.get(f"/desk/admin/users/{_user_id(ctx, 'inspector')}{suffix}"))

    return probe


def admin_user_post(suffix, data):
    def probe(ctx, role, village):
        client, csrf = ctx.desk(role)
        url = f"/desk/admin/users/{_user_id(ctx, 'inspector')}{suffix}"
        return _text(client.post(url, data={**data, "csrf_token": csrf or ""}))

    return probe


def probe_admin_revoke(ctx, role, village):
    """Revoke the inspector's device token (the world's login made it)."""
    store = connect(ctx.folder / "vc.db")
    try:
        user_id = store.user(username="inspector")["id"]
        token_id = next(t["id"] for t in store.tokens_of(user_id) if not t["revoked_at"])
    finally:
        store.close()
    client, csrf = ctx.desk(role)
    url = f"/desk/admin/users/{user_id}/tokens/{token_id}/revoke"
    return _text(client.post(url, data={"csrf_token": csrf or ""}))


ADMIN_VILLAGES_CSV = "code,name,township,county,county_class\n450222109001,新村,新镇,柳城县,2\n"


API_ROLES = frozenset(ROLES)
REVIEWERS = frozenset({"supervisor", "admin"})
ADMIN = frozenset({"admin"})

MATRIX = {
    # -- the JSON API (device tokens) --
    ("POST", "/api/v1/auth/login"): Entry(None, probe_login),
    ("GET", "/api/v1/auth/me"): Entry(API_ROLES, probe_me),
    ("GET", "/api/v1/auth/tokens"): Entry(API_ROLES, probe_tokens),
    ("DELETE", "/api/v1/auth/tokens/<int:token_id>"): Entry(
        frozenset({"inspector"}), probe_revoke, writes=True
    ),
    ("POST", "/api/v1/auth/logout"): Entry(API_ROLES, probe_logout, writes=True),
    ("GET", "/api/v1/sync/pull"): Entry(API_ROLES, probe_pull, lists=True),
    ("POST", "/api/v1/sync/push"): Entry(API_ROLES, probe_push_both, per_village=True, writes=True),
    ("GET", "/api/v1/facilities/<facility_id>/history"): Entry(
        API_ROLES,
        api_get(lambda w, v: f"/api/v1/facilities/{w.facility[v]}/history"),
        per_village=True,
    ),
    ("GET", "/api/v1/submissions/<submission_id>"): Entry(
        API_ROLES, api_get(lambda w, v: f"/api/v1/submissions/{w.submission[v]}"), per_village=True
    ),
    ("POST", "/api/v1/submissions/<submission_id>/review"): Entry(
        REVIEWERS, probe_review, per_village=True, writes=True
    ),
    ("GET", "/api/v1/media/<sha256>"): Entry(
        API_ROLES, api_get(lambda w, v: f"/api/v1/media/{sha(w.photo[v])}"), per_village=True
    ),
    ("PATCH", "/api/v1/media/<sha256>"): Entry(
        API_ROLES, probe_upload, per_village=True, writes=True
    ),
    ("GET", "/api/v1/media/<sha256>/display/<int:size>"): Entry(
        API_ROLES,
        api_get(lambda w, v: f"/api/v1/media/{sha(w.photo[v])}/display/320"),
        per_village=True,
    ),
    ("GET", "/api/v1/media/<sha256>/stamped/<submission_id>"): Entry(
        API_ROLES,
        api_get(lambda w, v: f"/api/v1/media/{sha(w.photo[v])}/stamped/{w.submission[v]}"),
        per_village=True,
    ),
    ("GET", "/api/v1/media/<sha256>/original"): Entry(
        REVIEWERS,
        api_get(lambda w, v: f"/api/v1/media/{sha(w.photo[v])}/original"),
        per_village=True,
    ),
    # -- the desk pages (session cookie; supervisors and admins) --
    ("GET", "/login"): Entry(None, lambda ctx, role, v: _text(ctx.app.test_client().get("/login"))),
    ("POST", "/login"): Entry(None, lambda ctx, role, v: probe_desk_login(ctx, role)),
    ("POST", "/logout"): Entry(REVIEWERS, lambda ctx, role, v: probe_desk_logout(ctx, role)),
    # -- own password and two-factor login (issue 13) --
    ("POST", "/api/v1/auth/password"): Entry(None, probe_change_password),
    ("GET", "/login/code"): Entry(None, lambda ctx, role, v: probe_login_code(ctx, role, "GET")),
    ("POST", "/login/code"): Entry(None, lambda ctx, role, v: probe_login_code(ctx, role, "POST")),
    ("GET", "/desk/password"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/password")),
    ("POST", "/desk/password"): Entry(
        REVIEWERS,
        desk_post(
            lambda w, v: "/desk/password",
            lambda w, v: {"password": "wrong", "new_password": "x", "new_password2": "x"},
        ),
    ),
    ("GET", "/desk/totp"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/totp")),
    ("POST", "/desk/totp"): Entry(
        REVIEWERS, desk_post(lambda w, v: "/desk/totp", lambda w, v: {"code": "000000"})
    ),
    ("GET", "/desk"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk")),
    ("GET", "/desk/queue"): Entry(
        REVIEWERS, desk_get(lambda w, v: "/desk/queue?state=all"), lists=True
    ),
    ("GET", "/desk/submissions/<submission_id>"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/submissions/{w.submission[v]}"),
        per_village=True,
    ),
    ("POST", "/desk/submissions/<submission_id>/review"): Entry(
        REVIEWERS,
        desk_post(
            lambda w, v: f"/desk/submissions/{w.submission[v]}/review",
            lambda w, v: {"decision": "reject", "reason": "矩阵测试"},
        ),
        per_village=True,
        writes=True,
    ),
    ("GET", "/desk/media/<sha>/<variant>"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/media/{sha(w.photo[v])}/original"),
        per_village=True,
    ),
    ("GET", "/desk/submissions/<submission_id>/stamped/<sha>.jpg"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/submissions/{w.submission[v]}/stamped/{sha(w.photo[v])}.jpg"),
        per_village=True,
    ),
    ("GET", "/desk/verify"): Entry(REVIEWERS, probe_verify, per_village=True),
    ("GET", "/desk/conflicts"): Entry(
        REVIEWERS, desk_get(lambda w, v: "/desk/conflicts?all=1"), lists=True
    ),
    ("GET", "/desk/conflicts/<conflict_id>"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/conflicts/{w.conflict[v]}"),
        per_village=True,
    ),
    ("POST", "/desk/conflicts/<conflict_id>/resolve"): Entry(
        REVIEWERS,
        desk_post(
            lambda w, v: f"/desk/conflicts/{w.conflict[v]}/resolve", lambda w, v: {"choice": "a"}
        ),
        per_village=True,
        writes=True,
    ),
    ("GET", "/desk/records/<record_id>/conflicts"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/records/{w.facility[v]}/conflicts"),
        per_village=True,
    ),
    ("POST", "/desk/records/<record_id>/conflicts"): Entry(
        REVIEWERS, probe_resolve_record, per_village=True, writes=True
    ),
    ("GET", "/desk/tasks"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/tasks")),
    ("GET", "/desk/indicators"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/indicators")),
    ("POST", "/desk/indicators/recompute"): Entry(
        ADMIN,
        desk_post(lambda w, v: "/desk/indicators/recompute", lambda w, v: {"month": "2026-11"}),
        writes=True,
    ),
    ("GET", "/desk/exports"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/exports")),
    ("GET", "/desk/exports/facilities.geojson"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/exports/facilities.geojson?village={v}"),
        per_village=True,
    ),
    ("GET", "/desk/exports/forms/<form_id>.csv"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/exports/forms/toilet.csv?village={v}"),
        per_village=True,
    ),
    ("GET", "/desk/exports/forms/<form_id>.xlsx"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/exports/forms/toilet.xlsx?village={v}"),
        per_village=True,
    ),
    ("GET", "/desk/exports/villages/<code>/photos.zip"): Entry(
        REVIEWERS,
        desk_get(lambda w, v: f"/desk/exports/villages/{v}/photos.zip"),
        per_village=True,
    ),
    ("GET", "/desk/reports/monthly"): Entry(
        REVIEWERS, desk_get(lambda w, v: "/desk/reports/monthly?month=2026-11")
    ),
    # -- the admin pages (issue 13): admins manage, supervisors see their people --
    ("GET", "/desk/admin/"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/admin/")),
    ("GET", "/desk/admin/users"): Entry(REVIEWERS, desk_get(lambda w, v: "/desk/admin/users")),
    ("POST", "/desk/admin/users"): Entry(
        ADMIN,
        desk_post(
            lambda w, v: "/desk/admin/users",
            lambda w, v: {"username": "new", "role": "inspector", "password": "Shan-Lake-7781"},
        ),
        writes=True,
    ),
    ("GET", "/desk/admin/users/<int:user_id>"): Entry(ADMIN, admin_user_get()),
    ("POST", "/desk/admin/users/<int:user_id>/role"): Entry(
        ADMIN, admin_user_post("/role", {"role": "secretary"}), writes=True
    ),
    ("POST", "/desk/admin/users/<int:user_id>/villages"): Entry(
        ADMIN, admin_user_post("/villages", {"villages": VILLAGES[0]}), writes=True
    ),
    ("POST", "/desk/admin/users/<int:user_id>/password"): Entry(
        ADMIN, admin_user_post("/password", {"password": "Reset-pass-2026"}), writes=True
    ),
    ("POST", "/desk/admin/users/<int:user_id>/active"): Entry(
        ADMIN, admin_user_post("/active", {"active": "0"}), writes=True
    ),
    ("POST", "/desk/admin/users/<int:user_id>/tokens/<int:token_id>/revoke"): Entry(
        ADMIN, probe_admin_revoke, writes=True
    ),
    ("GET", "/desk/admin/villages"): Entry(
        ADMIN, desk_get(lambda w, v: "/desk/admin/villages"), lists=True
    ),
    ("POST", "/desk/admin/villages"): Entry(
        ADMIN,
        desk_post(
            lambda w, v: "/desk/admin/villages",
            lambda w, v: {"confirm": "1", "text": ADMIN_VILLAGES_CSV},
        ),
        writes=True,
    ),
    ("GET", "/desk/admin/facilities"): Entry(
        ADMIN,
        desk_get(lambda w, v: f"/desk/admin/facilities?village={v}"),
        per_village=True,
    ),
    ("POST", "/desk/admin/facilities/<facility_id>"): Entry(
        ADMIN,
        desk_post(
            lambda w, v: f"/desk/admin/facilities/{w.facility[v]}",
            lambda w, v: {"name": "改名", "lat": "24.7", "lon": "109.3", "datum": "wgs84"},
        ),
        per_village=True,
        writes=True,
    ),
    ("POST", "/desk/admin/facilities/<facility_id>/retire"): Entry(
        ADMIN,
        desk_post(lambda w, v: f"/desk/admin/facilities/{w.facility[v]}/retire", lambda w, v: {}),
        per_village=True,
        writes=True,
    ),
    ("GET", "/desk/admin/settings"): Entry(ADMIN, desk_get(lambda w, v: "/desk/admin/settings")),
    ("POST", "/desk/admin/settings"): Entry(
        ADMIN,
        desk_post(lambda w, v: "/desk/admin/settings", lambda w, v: {"EVIDENCE_FAR_METRES": "300"}),
        writes=True,
    ),
    ("GET", "/desk/admin/audit"): Entry(ADMIN, desk_get(lambda w, v: "/desk/admin/audit")),
    # XLSForm import (issue 15, server/admin_forms.py): forms are deployment-wide
    ("GET", "/desk/admin/forms"): Entry(ADMIN, desk_get(lambda w, v: "/desk/admin/forms")),
    ("POST", "/desk/admin/forms"): Entry(
        ADMIN,
        desk_post(
            lambda w, v: "/desk/admin/forms",
            lambda w, v: {"confirm": "1", "workbook": base64.b64encode(small_form()).decode()},
        ),
        writes=True,
    ),
    ("GET", "/desk/admin/audit.csv"): Entry(ADMIN, desk_get(lambda w, v: "/desk/admin/audit.csv")),
    # -- the PWA shell and static files: public, and never about a village --
    ("GET", "/favicon.ico"): Entry(
        None, lambda ctx, role, v: _text(ctx.app.test_client().get("/favicon.ico"))
    ),
    ("GET", "/"): Entry(None, lambda ctx, role, v: _text(ctx.app.test_client().get("/"))),
    ("GET", "/app/"): Entry(None, lambda ctx, role, v: _text(ctx.app.test_client().get("/app/"))),
    ("GET", "/app/sw.js"): Entry(
        None, lambda ctx, role, v: _text(ctx.app.test_client().get("/app/sw.js"))
    ),
    ("GET", "/app/<path:filename>"): Entry(
        None, lambda ctx, role, v: _text(ctx.app.test_client().get("/app/manifest.webmanifest"))
    ),
    ("GET", "/static/<path:filename>"): Entry(
        None, lambda ctx, role, v: _text(ctx.app.test_client().get("/static/desk.css"))
    ),
    # -- probes for the process manager: public, never about a village --
    ("GET", "/healthz"): Entry(
        None, lambda ctx, role, v: _text(ctx.app.test_client().get("/healthz"))
    ),
    ("GET", "/readyz"): Entry(
        None, lambda ctx, role, v: _text(ctx.app.test_client().get("/readyz"))
    ),
}


ALLOWED = {200, 302, 304}
DENIED = {401, 403, 404}


def may(entry: Entry, role: str, village: str | None) -> bool:
    if entry.roles is None:
        return True
    if role not in entry.roles:
        return False
    return village is None or village in SCOPE[role]


def test_every_route_is_in_the_matrix(app):
    """A route the matrix does not name fails here: say who may call it, and how to probe it."""
    routes = app_rules(app)
    assert sorted(routes - set(MATRIX)) == [], "add these routes to MATRIX"
    assert sorted(set(MATRIX) - routes) == [], "MATRIX names routes the app lacks"


@pytest.mark.parametrize(
    "route",
    [r for r in sorted(MATRIX)],
    ids=lambda r: f"{r[0]} {r[1]}",
)
def test_each_role_reaches_only_its_villages(route, fresh):
    entry = MATRIX[route]
    ctx = fresh()
    failures = []
    for role in (*ROLES, ANON):
        if entry.writes:
            ctx = fresh()
        for village in VILLAGES if entry.per_village else [None]:
            before = ctx.fingerprint() if entry.writes else None
            status, body = entry.probe(ctx, role, village)
            where = f"{role} on {village or 'its scope'}: {status}"
            if may(entry, role, village):
                if status not in ALLOWED:
                    failures.append(f"{where}, expected success")
                elif entry.lists:
                    unseen = [v for v in SCOPE[role] if not ctx.world.markers(v) & _words(body)]
                    if unseen:
                        failures.append(f"{where}, does not show {unseen}")
            else:
                if status not in DENIED:
                    failures.append(f"{where}, expected 401/403/404")
                if entry.writes and ctx.fingerprint() != before:
                    failures.append(f"{where}, refused but changed the data")
            outside = set(VILLAGES) - SCOPE[role]
            leaked = sorted(m for v in outside for m in ctx.world.markers(v) & _words(body))
            if leaked:
                failures.append(f"{where}, names records outside the caller's scope: {leaked}")
    assert not failures, "\n".join(failures)


_WORD = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # records
    r"|(?<![0-9a-f])(?:[0-9a-f]{64}|[0-9a-f]{32})(?![0-9a-f])"  # photos, conflicts
    r"|(?<!\d)\d{12}(?!\d)"  # villages
)


def _words(body: str) -> set[str]:
    """The ids and village codes an answer contains."""
    return set(_WORD.findall(body))


# -- attacks through the batch: ids and photo hashes of records outside the caller's scope ----

ATTACKERS = [r for r in ROLES if SCOPE[r] != set(VILLAGES)]


def _target(role: str) -> tuple[str, str]:
    """(a village of the caller's, a village outside its scope)."""
    return min(SCOPE[role]), min(set(VILLAGES) - SCOPE[role])


def _village_rows(ctx: Ctx, village: str) -> list:
    """Everything stored about one village's records."""
    store = connect(ctx.folder / "vc.db")
    try:
        return [
            store.q(sql, village=village).all()
            for sql in (
                "SELECT id, state, village_code FROM facilities WHERE village_code = :village",
                "SELECT id, state, record_id FROM submissions WHERE village_code = :village",
                "SELECT o.id FROM observations o JOIN facilities f ON f.id = o.record_id"
                " WHERE f.village_code = :village",
            )
        ]
    finally:
        store.close()


@pytest.mark.parametrize("role", ATTACKERS)
def test_a_batch_cannot_write_into_another_village_by_reusing_an_id(role, fresh):
    ctx = fresh()
    own, other = _target(role)
    victim = ctx.world.facility[other]
    before = _village_rows(ctx, other)
    client, headers = ctx.api(role)
    device = f"attack-{role}"
    clock = f"1763604900000-0001-{device}"
    claim = {
        "type": "facility",
        "id": victim,
        "village": own,
        "kind": "toilet",
        "name": "冒用编号的户厕",
        "lat": 24.7,
        "lon": 109.3,
        "clock": clock,
        "fields": {"toilet_type": "household"},
    }
    retire = submission(
        victim,
        f"1763604900001-0001-{device}",
        form="facility_status",
        answers={"status": "retired", "reason": "not_found"},
    )
    inspect = submission(victim, f"1763604900002-0001-{device}")
    response = client.post(
        "/api/v1/sync/push",
        json={"device_id": device, "items": [claim, retire, inspect]},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    statuses = [r["status"] for r in response.json["results"]]
    assert statuses[0] in ("refused", "invalid") and set(statuses[1:]) == {"invalid"}, statuses
    assert _village_rows(ctx, other) == before


@pytest.mark.parametrize("role", ATTACKERS)
def test_a_photo_hash_from_another_village_opens_nothing(role, fresh):
    ctx = fresh()
    own, other = _target(role)
    stolen = sha(ctx.world.photo[other])
    facility = ctx.world.facility[own]
    client, headers = ctx.api(role)
    device = f"attack-{role}"
    item = submission(
        facility,
        f"1763604900000-0001-{device}",
        answers=toilet_answers(photo_outside=[photo(stolen)], photo_inside=[photo(stolen)]),
    )
    pushed = client.post(
        "/api/v1/sync/push", json={"device_id": device, "items": [item]}, headers=headers
    )
    assert pushed.status_code == 200, pushed.json
    leaks = []
    for url in (
        f"/api/v1/media/{stolen}/display/1280",
        f"/api/v1/media/{stolen}/original",
        f"/api/v1/submissions/{item['id']}",
    ):
        status, body = _text(client.get(url, headers=headers))
        if url.endswith(item["id"]):
            named = ctx.world.markers(other) - {stolen} & _words(body)
            if named:
                leaks.append(f"{url} names {sorted(named)}")
        elif status not in DENIED:
            leaks.append(f"{url}: {status}")
    if role in DESK_ROLES:
        browser, _ = ctx.desk(role)
        for variant in ("320", "original"):
            status, _ = _text(browser.get(f"/desk/media/{stolen}/{variant}"))
            if status not in DENIED:
                leaks.append(f"/desk/media/{stolen}/{variant}: {status}")
    assert not leaks, "\n".join(leaks)
