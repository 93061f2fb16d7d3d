"""The desk's own-account pages: the TOTP code after a right password, choosing a new password
(first login, after an admin's reset, or when PASSWORD_MAX_AGE_DAYS has passed) and TOTP
enrolment with its QR code and recovery codes. Routes of server/web.py's blueprint."""

from flask import current_app, flash, g, redirect, render_template, request, session, url_for

from . import password_policy, totp
from .auth import (
    PASSWORD_DUE_MESSAGES,
    attempt_login,
    hash_password,
    password_change_due,
    second_factor_attempt,
    throttled_message,
)
from .context import now, now_iso, storage
from .web import (
    PAGE_ROLES,
    PENDING_CODE_SECONDS,
    bp,
    check_csrf,
    login_required,
    setup_step,
    start_session,
)


def _pending_user() -> dict | None:
    """The user whose password was right a moment ago and whose code is awaited."""
    pending = session.get("pending_2fa")
    if not isinstance(pending, dict) or not isinstance(pending.get("uid"), int):
        return None
    if not 0 <= now().timestamp() - float(pending.get("at", 0)) <= PENDING_CODE_SECONDS:
        return None
    user = storage().user(id=pending["uid"])
    if not user or not user["active"] or user["role"] not in PAGE_ROLES:
        return None
    return user


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """Second step of a desk login: a TOTP code (or a recovery code), counted by the throttle."""
    user = _pending_user()
    if user is None:
        session.pop("pending_2fa", None)
        flash("请重新输入用户名和密码")
        return redirect(url_for("web.login"))
    if request.method == "POST":
        check_csrf()
        accepted, wait = second_factor_attempt(storage(), user, request.form.get("code", ""))
        if accepted:
            target = session["pending_2fa"].get("next")
            start_session(user)
            return redirect(target or url_for("web.home"))
        if wait:
            flash(throttled_message(wait))
            return render_template("login_code.html"), 429, {"Retry-After": str(wait)}
        flash("验证码错误或已使用")
    return render_template("login_code.html")


@bp.route("/desk/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Choose a new password with the current one; the policy's reasons are shown in Chinese."""
    user = g.user
    if request.method == "POST":
        current = request.form.get("password", "")
        new, again = request.form.get("new_password", ""), request.form.get("new_password2", "")
        store = storage()
        checked, wait = attempt_login(store, user["username"], current)
        if wait:
            flash(throttled_message(wait))
        elif checked is None:
            flash("原密码错误")
        elif new != again:
            flash("两次输入的新密码不一致")
        elif new == current:
            flash("新密码不能与原密码相同")
        else:
            try:
                new_hash = hash_password(new, username=user["username"])
            except password_policy.PasswordRejected as exc:
                for problem in exc.problems:
                    flash(problem)
            else:
                store.set_password_hash(
                    user["id"], new_hash, at=now_iso(), revoke_tokens=False, must_change=False
                )
                start_session(store.user(id=user["id"]))  # the change ended every desk session
                flash("密码已修改")
                return redirect(url_for(setup_step(store.user(id=user["id"])) or "web.home"))
    return render_template(
        "password.html",
        reason=password_due_reason(user),
        min_length=password_policy.MIN_LENGTH,
    )


def password_due_reason(user: dict) -> str | None:
    due = password_change_due(user)
    return PASSWORD_DUE_MESSAGES[due] if due else None


@bp.route("/desk/totp", methods=["GET", "POST"])
@login_required
def totp_enrol():
    """Enrol a TOTP app: QR code and secret, confirmed by a first code; then the ten recovery
    codes, shown this once."""
    user, secret_key = g.user, current_app.config["SECRET_KEY"]
    if user["totp_secret"]:
        return render_template("totp_enrol.html", enrolled=True)
    sealed = session.get("totp_pending")
    secret = totp.unseal(sealed, secret_key) if isinstance(sealed, str) else None
    if request.method == "POST" and secret:
        step = totp.matching_step(secret, request.form.get("code", ""), now().timestamp())
        if step is not None:
            codes = totp.new_recovery_codes()
            store = storage()
            store.set_totp(
                user["id"],
                secret=totp.seal(secret, secret_key),
                recovery=[totp.hash_recovery(c) for c in codes],
                at=now_iso(),
            )
            store.accept_totp_step(user["id"], step)
            session.pop("totp_pending", None)
            return render_template("totp_enrol.html", enrolled=True, recovery_codes=codes)
        flash("验证码不正确，请核对手机时间后重试")
    if not secret:
        secret = totp.new_secret()
        session["totp_pending"] = totp.seal(secret, secret_key)
    uri = totp.provisioning_uri(secret, user["username"])
    return render_template(
        "totp_enrol.html",
        enrolled=False,
        secret=secret,
        qr=totp.qr_svg(uri),
        required=user["role"] in totp.required_roles(current_app.config),
    )
