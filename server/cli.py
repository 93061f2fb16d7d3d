"""The `villagecheck` command: a thin layer that parses options and calls the library."""

import functools
import getpass
import re
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.engine import make_url

from . import scheduler as _scheduler
from .account_cli import COMMANDS as ACCOUNT_COMMANDS
from .audit_command import COMMANDS as AUDIT_COMMANDS
from .auth import ROLES, hash_password
from .backup import COMMANDS as BACKUP_COMMANDS
from .bootstrap import init_db
from .context import now, now_iso, storage
from .demo import load_demo
from .facilities_csv import import_facilities
from .ingest_worker import worker_command
from .jobs import JOBS
from .password_policy import PasswordRejected
from .serve_command import serve
from .storage import dumps
from .villages_csv import UNDECLARED_ZH, decode_csv_bytes, parse_datum_option, parse_villages_csv
from .xlsform_cli import COMMANDS as XLSFORM_COMMANDS


def _create_app():
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main():
    """乡村巡检 villagecheck: the sync server of the offline inspection app."""


def _as_os_user(command):
    """Every audit entry the command writes names the OS user as its actor (detail.os_user;
    user_id stays NULL): the command's storage audits through a wrapper, removed after."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        store = storage()
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a bare container)
            os_user = "?"
        plain = store.audit
        store.audit = lambda action, *, detail=None, **kw: plain(
            action, detail={**(detail or {}), "os_user": os_user}, **kw
        )
        try:
            return command(*args, **kwargs)
        finally:
            del store.audit  # the pooled connection goes back as it was

    return wrapper


def _shown(url: str) -> str:
    """The database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def register(app) -> None:
    for command in (
        init_db_command,
        create_user,
        import_villages,
        load_demo_command,
        serve,
        run_job_command,
        job_runs_command,
        list_users,
        set_role,
        assign_villages,
        unassign_villages,
        reset_password,
        list_tokens,
        revoke_token,
        deactivate_user,
        activate_user,
        *BACKUP_COMMANDS,
        *AUDIT_COMMANDS,
        worker_command,
        import_facilities,
        *ACCOUNT_COMMANDS,
        *XLSFORM_COMMANDS,
    ):
        app.cli.add_command(command)


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database or upgrade it in place, and publish the built-in forms."""
    published = init_db(storage(), at=now_iso())
    click.echo(f"数据库已就绪: {_shown(current_app.config['DATABASE_URL'])}")
    for name in published:
        click.echo(f"  发布表单 {name}")


def _policy_hash(password: str, username: str) -> str:
    """The password's hash, or the password policy's reasons as the command's error."""
    try:
        return hash_password(password, username=username)
    except PasswordRejected as exc:
        raise click.ClickException(str(exc)) from None


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--display-name", default=None, help="name shown in the app (default: username)")
@click.option("--village", "villages", multiple=True, help="village code (repeatable)")
@click.option("--township", default=None, help="supervisor scope: a township name")
@click.option("--county", default=None, help="admin/supervisor scope: a county code")
@click.password_option(help="prompted for when not given")
@with_appcontext
@_as_os_user
def create_user(username, role, display_name, villages, township, county, password):
    """Create a user and assign villages."""
    store = storage()
    init_db(store, at=now_iso())
    if store.user(username=username):
        raise click.ClickException(f"用户 {username} 已存在")
    unknown = [c for c in villages if store.village(c) is None]
    if unknown:
        raise click.ClickException(f"没有这些村: {', '.join(unknown)}")
    user_id = store.create_user(
        username=username,
        password_hash=_policy_hash(password, username),
        must_change_password=True,
        role=role,
        display_name=display_name or username,
        at=now_iso(),
        scope_township=township,
        scope_county=county,
    )
    store.assign(user_id, villages, at=now_iso())
    click.echo(f"已创建用户 {username} ({role}), 村: {', '.join(villages) or '无'}")


@click.command("import-villages")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--datum", help="坐标系 of lat/lon: wgs84, cgcs2000, gcj02 (AMap/Tencent), bd09")
@with_appcontext
@_as_os_user
def import_villages(csv_file: Path, datum: str | None):
    """Import or update villages from a CSV file; refused whole if any row is wrong."""
    store = storage()
    init_db(store, at=now_iso())
    try:
        text = decode_csv_bytes(csv_file.read_bytes())
        result = parse_villages_csv(text, parse_datum_option(datum))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if result.undeclared_positions:
        raise click.ClickException(f"{UNDECLARED_ZH}；未导入任何村")
    if result.errors:
        for error in result.errors:
            click.echo(f"第 {error['row']} 行: {error['message_zh']}", err=True)
        raise click.ClickException(f"{len(result.errors)} 处错误，未导入任何村")
    store.upsert_villages(result.rows, at=now_iso())
    click.echo(f"已导入 {len(result.rows)} 个村")


@click.command("load-demo")
@with_appcontext
def load_demo_command():
    """Load the demo county into an empty database."""
    store = storage()
    init_db(store, at=now_iso())
    if not store.is_empty():
        raise click.ClickException("数据库不是空的，未加载示例数据")
    _load_and_print(store)


def _load_and_print(store) -> None:
    data = load_demo(store, now=now())
    click.echo("已加载示例县 (demo county). 登录账号 / demo logins:")
    for user in data["users"]:
        click.echo(
            f"  {user['role']:<11} 用户名 {user['username']:<12} 密码 {user['password']}"
            f"  ({user['display_name']})"
        )


# -- scheduled jobs -----------------------------------------------------------------------------


@click.command("run-job")
@click.argument("name", type=click.Choice(sorted(JOBS)))
@click.option("--month", default=None, help="YYYY-MM (generate-tasks, recompute-indicators)")
@click.option("--seed", type=int, default=None, help="draw-sample: use this seed")
@with_appcontext
def run_job_command(name, month, seed):
    """Run one scheduled job now, under the same lease as the scheduler."""
    if month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter("YYYY-MM", param_hint="--month")
    store = storage()
    init_db(store, at=now_iso())
    outcome = _scheduler.run_job(
        store,
        name,
        clock=now,
        config=current_app.config,
        holder=_scheduler.make_holder("cli:"),
        month=month,
        seed=seed,
    )
    if not outcome.ran:
        raise click.ClickException(f"{name} 正由另一个进程运行，请稍后再试")
    if outcome.error:
        click.echo(outcome.error, err=True)
        raise click.ClickException(f"{name} 运行失败 (run {outcome.run_id})")
    click.echo(f"{name} 完成 (run {outcome.run_id}): {dumps(outcome.summary)}")


@click.command("job-runs")
@click.option("--job", default=None, type=click.Choice(sorted(JOBS)))
@click.option("--limit", default=20, show_default=True)
@with_appcontext
def job_runs_command(job, limit):
    """Show the job run log, newest first."""
    for run in storage().job_runs(job, limit):
        status = "运行中" if run["finished_at"] is None else ("成功" if run["ok"] else "失败")
        click.echo(
            f"{run['id']:>6} {run['job']:<21} {run['started_at']} {status} slot={run['slot']}"
            f" {dumps(run['summary']) if run['summary'] else (run['error'] or '').strip()[-200:]}"
        )


# -- user administration ------------------------------------------------------------------------


def _user(store, username) -> dict:
    user = store.user(username=username)
    if user is None:
        raise click.ClickException(f"没有用户 {username}")
    return user


def _villages(store, codes) -> list[str]:
    unknown = [c for c in codes if store.village(c) is None]
    if unknown:
        raise click.ClickException(f"没有这些村: {', '.join(unknown)}")
    return list(codes)


@click.command("users")
@with_appcontext
def list_users():
    """List users: role, scope, villages, live device tokens, active."""
    for u in storage().users():
        scope = u["scope_township"] or u["scope_county"] or "-"
        state = "" if u["active"] else "  [已停用]"
        click.echo(
            f"{u['username']:<16} {u['role']:<10} 范围 {scope:<10} 村 {u['villages']:>3}"
            f"  设备 {u['live_tokens']:>2}  {u['display_name'] or ''}{state}"
        )


@click.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--township", default=None, help="supervisor scope: a township name")
@click.option("--county", default=None, help="admin/supervisor scope: a county code")
@with_appcontext
@_as_os_user
def set_role(username, role, township, county):
    """Change a user's role (and the township/county scope of a supervisor or admin)."""
    store = storage()
    user = _user(store, username)
    if role in ("inspector", "secretary") and (township or county):
        raise click.ClickException("工作队员和第一书记按分配的村确定范围，不设乡镇/县")
    store.set_user_role(
        user["id"], role, scope_township=township, scope_county=county, at=now_iso()
    )
    click.echo(f"{username}: {role}")
    if role == "supervisor" and not (township or county):
        click.echo("提示: 督查未设乡镇或县范围，将看不到任何村", err=True)


@click.command("assign-villages")
@click.argument("username")
@click.argument("codes", nargs=-1, required=True)
@with_appcontext
@_as_os_user
def assign_villages(username, codes):
    """Assign villages to an inspector or first secretary."""
    store = storage()
    user = _user(store, username)
    store.assign(user["id"], _villages(store, codes), at=now_iso())
    click.echo(f"{username}: 村 {', '.join(store.assigned_villages(user['id'])) or '无'}")


@click.command("unassign-villages")
@click.argument("username")
@click.argument("codes", nargs=-1, required=True)
@with_appcontext
@_as_os_user
def unassign_villages(username, codes):
    """Take villages away from a user."""
    store = storage()
    user = _user(store, username)
    removed = store.unassign(user["id"], codes, at=now_iso())
    left = len(store.assigned_villages(user["id"]))
    click.echo(f"{username}: 取消 {removed} 个村, 现有 {left} 个")


@click.command("reset-password")
@click.argument("username")
@click.password_option(help="prompted for when not given")
@click.option(
    "--keep-tokens",
    is_flag=True,
    help="leave the user's phones logged in (by default every device token is revoked)",
)
@with_appcontext
@_as_os_user
def reset_password(username, password, keep_tokens):
    """Set a new password; ends desk sessions and, unless --keep-tokens, logs out every phone."""
    store = storage()
    user = _user(store, username)
    revoked = store.set_password_hash(
        user["id"],
        _policy_hash(password, username),
        at=now_iso(),
        revoke_tokens=not keep_tokens,
    )
    kept = "，手机保持登录" if keep_tokens else f"，注销设备登录 {revoked} 个"
    click.echo(f"{username}: 密码已重置{kept}，下次登录须设置新密码")


@click.command("tokens")
@click.argument("username")
@with_appcontext
def list_tokens(username):
    """List a user's device logins (never the tokens themselves)."""
    store = storage()
    for t in store.tokens_of(_user(store, username)["id"]):
        state = f"已注销 {t['revoked_at']}" if t["revoked_at"] else "有效"
        click.echo(
            f"{t['id']:>5} {t['device_id'] or '-':<24} {t['label'] or '':<16}"
            f" 创建 {t['created_at']} 最近 {t['last_used_at']} {state}"
        )


@click.command("revoke-token")
@click.argument("username")
@click.argument("token_ids", nargs=-1, type=int)
@click.option("--all", "revoke_all", is_flag=True, help="revoke every live token of the user")
@with_appcontext
@_as_os_user
def revoke_token(username, token_ids, revoke_all):
    """Revoke device logins (a lost phone): by id, or --all."""
    store = storage()
    user = _user(store, username)
    if revoke_all:
        token_ids = [t["id"] for t in store.tokens_of(user["id"]) if not t["revoked_at"]]
    elif not token_ids:
        raise click.UsageError("give token ids or --all")
    for token_id in token_ids:
        if not store.revoke_token(token_id, user_id=user["id"], by=None, at=now_iso()):
            raise click.ClickException(f"{username} 没有有效的设备登录 {token_id}")
        click.echo(f"已注销 {token_id}")


@click.command("deactivate-user")
@click.argument("username")
@with_appcontext
@_as_os_user
def deactivate_user(username):
    """Stop a user from logging in; every device token is revoked. Nothing is deleted."""
    store = storage()
    revoked = store.set_user_active(_user(store, username)["id"], False, at=now_iso())
    click.echo(f"{username}: 已停用, 注销设备登录 {revoked} 个")


@click.command("activate-user")
@click.argument("username")
@with_appcontext
@_as_os_user
def activate_user(username):
    """Let a deactivated user log in again."""
    store = storage()
    store.set_user_active(_user(store, username)["id"], True, at=now_iso())
    click.echo(f"{username}: 已启用")
