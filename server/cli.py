"""The `villagecheck` command: a thin layer that parses options and calls the library."""

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from werkzeug.serving import run_simple

from .auth import ROLES, hash_password
from .bootstrap import init_db
from .context import now, now_iso, storage
from .demo import demo_data, load_demo
from .villages_csv import decode_csv_bytes, parse_villages_csv


def _create_app():
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main():
    """乡村巡检 villagecheck: the sync server of the offline inspection app."""


def register(app) -> None:
    for command in (init_db_command, create_user, import_villages, load_demo_command, serve):
        app.cli.add_command(command)


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database or upgrade it in place, and publish the built-in forms."""
    published = init_db(storage(), at=now_iso())
    click.echo(f"数据库已就绪: {current_app.config['DATABASE_PATH']}")
    for name in published:
        click.echo(f"  发布表单 {name}")


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--display-name", default=None, help="name shown in the app (default: username)")
@click.option("--village", "villages", multiple=True, help="village code (repeatable)")
@click.option("--township", default=None, help="supervisor scope: a township name")
@click.option("--county", default=None, help="admin/supervisor scope: a county code")
@click.password_option(help="prompted for when not given")
@with_appcontext
def create_user(username, role, display_name, villages, township, county, password):
    """Create a user and assign villages."""
    store = storage()
    init_db(store, at=now_iso())
    if store.user(username=username):
        raise click.ClickException(f"用户 {username} 已存在")
    unknown = [c for c in villages if store.village(c) is None]
    if unknown:
        raise click.ClickException(f"没有这些村: {', '.join(unknown)}")
    if len(password) < 8:
        raise click.ClickException("密码至少 8 位")
    user_id = store.create_user(
        username=username,
        password_hash=hash_password(password),
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
@with_appcontext
def import_villages(csv_file: Path):
    """Import or update villages from a CSV file; refused whole if any row is wrong."""
    store = storage()
    init_db(store, at=now_iso())
    try:
        text = decode_csv_bytes(csv_file.read_bytes())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    result = parse_villages_csv(text)
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


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--demo/--no-demo", default=False, help="load the demo county when the database is empty"
)
@with_appcontext
def serve(host, port, demo):
    """Create or upgrade the database, then serve the app."""
    store = storage()
    init_db(store, at=now_iso())
    if demo and store.is_empty():
        _load_and_print(store)
    elif demo:
        click.echo(
            "数据库已有数据，未重新加载示例数据。demo logins: "
            + ", ".join(f"{u['username']}/{u['password']}" for u in demo_data()["users"])
        )
    click.echo(f"乡村巡检 服务已启动: http://{host}:{port}/")
    sys.stdout.flush()
    run_simple(host, port, current_app._get_current_object(), threaded=True)
