"""Sessions for the server-rendered pages (supervisors and admins), with CSRF checks.

Phones use device tokens (server/auth.py); people at a laptop log in here. A desk login is a
row in `desk_sessions`: the signed cookie carries only a random session id (the database keeps
its SHA-256), so logout, a password reset, deactivation or a role change end the session at
once, even for a copied cookie. Sessions also end after DESK_IDLE_MINUTES without a page load
and DESK_SESSION_HOURS after login. Flask's own signed cookie still carries the CSRF token and
flashed messages, which anonymous visitors need too, so a stranger loading the login page never
writes a row. (Flask-Session would swap the whole cookie for a store with its own tables and
expiry, and a new dependency, to get the same.)

Every POST from a page must carry the session's CSRF token (a hidden `csrf_token` field or an
X-CSRF-Token header), so another site cannot make a logged-in supervisor's browser approve a
submission.
"""

import functools
import hmac
import json
import secrets
from datetime import timedelta
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from .auth import (
    ROLE_NAMES,
    attempt_login,
    hash_token,
    password_change_due,
    scope_villages,
    throttled_message,
    totp_enrolled,
    totp_enrolment_due,
)
from .context import now, now_iso, storage

bp = Blueprint("web", __name__)
PAGE_ROLES = ("supervisor", "admin")
# Pages a user may see before choosing their own password and enrolling a second factor.
SETUP_ENDPOINTS = frozenset({"web.change_password", "web.totp_enrol", "web.logout"})
PENDING_CODE_SECONDS = 300  # from a right password to its TOTP code


class DeskCookieInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the page was served over HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """400 unless a state-changing request carries this session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="页面已过期，请刷新后重试 (CSRF token missing or wrong)")


def safe_next(target: str | None, prefix: str = "/") -> str | None:
    """A local path to go back to, or None: never another site ("//x", "/\\x") and never a
    control character (which cannot go into a Location header)."""
    if (
        not target
        or not target.startswith(prefix)
        or target.startswith(("//", "/\\"))
        or not target.isprintable()
    ):
        return None
    return target


def _session_cutoffs() -> tuple[str, str]:
    """(idle_before, created_before): sessions last seen or begun before these have ended."""
    config, current = current_app.config, now()
    idle = current - timedelta(minutes=config["DESK_IDLE_MINUTES"])
    created = current - timedelta(hours=config["DESK_SESSION_HOURS"])
    return idle.isoformat(timespec="milliseconds"), created.isoformat(timespec="milliseconds")


def start_session(user: dict) -> None:
    """Log `user` in: a fresh cookie (new CSRF token) naming a new server-side session.
    Ended sessions nobody came back to are deleted here, so the table stays small."""
    session_id = secrets.token_urlsafe(32)
    store = storage()
    idle_before, created_before = _session_cutoffs()
    with store.write():
        store.prune_desk_sessions(idle_before=idle_before, created_before=created_before)
        store.create_desk_session(hash_token(session_id), user["id"], at=now_iso())
    session.clear()
    session["sid"] = session_id
    session.permanent = True


def end_session() -> None:
    session_id = session.get("sid")
    if isinstance(session_id, str):
        storage().end_desk_session(hash_token(session_id))
    session.clear()


def session_user() -> dict | None:
    """The active user of this cookie's live desk session, touching it; None otherwise."""
    session_id = session.get("sid")
    if not isinstance(session_id, str):
        return None
    store = storage()
    row = store.desk_session(hash_token(session_id))
    if row is None:
        return None
    idle_before, created_before = _session_cutoffs()
    if row["last_seen_at"] < idle_before or row["created_at"] < created_before:
        store.prune_desk_sessions(idle_before=idle_before, created_before=created_before)
        return None
    user = store.user(id=row["user_id"])
    if user is None or not user["active"]:
        return None
    at = now_iso()
    if row["last_seen_at"][:16] < at[:16]:  # once a minute is enough for the idle timeout
        store.touch_desk_session(row["id"], at)
    return user


def login_required(view=None, *, roles: tuple[str, ...] = PAGE_ROLES):
    """Decorator for pages: a logged-in user with one of `roles`; sets g.user and g.villages."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            user = session_user()
            if user is None:
                session.clear()
                return redirect(url_for("web.login", next=request.full_path))
            if user["role"] not in roles:
                abort(403)
            step = setup_step(user)
            if step and request.endpoint not in SETUP_ENDPOINTS:
                return redirect(url_for(step))
            g.user = user
            g.villages = frozenset(scope_villages(storage(), user))
            check_csrf()
            return fn(*args, **kwargs)

        return wrapper

    return decorate(view) if view else decorate


def setup_step(user: dict) -> str | None:
    """The page a logged-in user must finish before any other: a new password (first login,
    an admin's reset, PASSWORD_MAX_AGE_DAYS), then TOTP enrolment (TOTP_REQUIRED_ROLES)."""
    if password_change_due(user):
        return "web.change_password"
    if totp_enrolment_due(user):
        return "web.totp_enrol"
    return None


@bp.app_context_processor
def _template_globals():
    return {"csrf_token": csrf_token, "ROLE_NAMES": ROLE_NAMES}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The supervisors' and admins' login page."""
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user, wait = attempt_login(storage(), username, password) if username else (None, 0)
        if user and user["role"] in PAGE_ROLES and totp_enrolled(user):
            session.clear()  # the password was right: the code comes next (server/account.py)
            session["pending_2fa"] = {
                "uid": user["id"],
                "at": now().timestamp(),
                "next": safe_next(request.args.get("next")),
            }
            return redirect(url_for("web.login_code"))
        if user and user["role"] in PAGE_ROLES:
            start_session(user)
            return redirect(safe_next(request.args.get("next")) or url_for("web.home"))
        if user:
            flash("工作队员和第一书记请使用手机应用登录")
        elif wait:
            flash(throttled_message(wait))
            return render_template("login.html"), 429, {"Retry-After": str(wait)}
        else:
            flash("用户名或密码错误")
    return render_template("login.html")


@bp.post("/logout")
@login_required
def logout():
    end_session()
    return redirect(url_for("web.login"))


@bp.get("/desk")
@login_required
def home():
    """The landing page after login: links to the supervisor's and admin's work, and for
    admins the last day's throttled logins (someone guessing passwords)."""
    alerts = []
    if g.user["role"] == "admin":
        since = (now() - timedelta(days=1)).isoformat(timespec="milliseconds")
        alerts = [
            {**a, "detail": json.loads(a["detail"] or "{}")} for a in storage().login_alerts(since)
        ]
    return render_template("home.html", login_alerts=alerts)


FAVICON = Path(__file__).resolve().parent.parent / "client_pwa" / "icons" / "icon-192.png"


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask every site for /favicon.ico: the app's icon (a PNG, which they all accept)."""
    response = Response(FAVICON.read_bytes(), mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


from . import account  # noqa: E402, F401 - its pages are routes of this blueprint
