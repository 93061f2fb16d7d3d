"""`villagecheck reset-2fa USERNAME`: remove a user's TOTP second factor (a lost phone and no
recovery code left). Audited (`user.totp_clear`); the user's desk sessions end, and if their
role is in TOTP_REQUIRED_ROLES they enrol again at the next login."""

import click
from flask.cli import with_appcontext

from .context import now_iso, storage


@click.command("reset-2fa")
@click.argument("username")
@with_appcontext
def reset_2fa(username):
    """Remove a user's two-factor login (TOTP) so they can enrol again."""
    store = storage()
    user = store.user(username=username)
    if user is None:
        raise click.ClickException(f"没有用户 {username}")
    if not user["totp_secret"]:
        raise click.ClickException(f"{username} 没有启用两步验证")
    store.clear_totp(user["id"], at=now_iso())
    click.echo(f"{username}: 已清除两步验证，下次登录可重新绑定")


COMMANDS = (reset_2fa,)
