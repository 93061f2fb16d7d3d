"""`villagecheck import-xlsform FILE.xlsx [--publish] [--dry-run]` and
`villagecheck export-xlsform FORM [-o FILE]` (forms/xlsform.py does the translation).

Import prints every error of the file (sheet, row, column, reason in Chinese and English) and
publishes nothing when there is any; `--publish` publishes the new version (older versions are
kept; a published version never changes), audited as `form.publish`."""

import getpass
import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from forms.xlsform import export_xlsform, import_xlsform

from .bootstrap import definition_sha256
from .context import now_iso, storage

MAX_FILE_BYTES = 10 * 1024 * 1024


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "?"


def publish_imported(store, definition: dict, *, user_id=None, at: str) -> bool:
    """Publish an imported definition (True if new); raises ValueError if that id and version
    is already published with other content. Audited with the desk user, or (from the command
    line, user_id None) the OS user, as the other commands do."""
    actor = {} if user_id is not None else {"os_user": _os_user()}
    new = store.publish_form(definition, definition_sha256(definition), at=at)
    store.audit(
        "form.publish",
        at=at,
        user_id=user_id,
        entity="form",
        entity_id=f"{definition['id']}@{definition['version']}",
        detail={
            "form_id": definition["id"],
            "version": definition["version"],
            "new": new,
            "source": "xlsform",
            **actor,
        },
    )
    return new


@click.command("import-xlsform")
@click.argument("xlsx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--publish", is_flag=True, help="Publish the form when it has no errors.")
@click.option("--dry-run", is_flag=True, help="Only check: list every error, publish nothing.")
@with_appcontext
def import_xlsform_command(xlsx_file: Path, publish: bool, dry_run: bool):
    """Check an XLSForm workbook and translate it into a form (optionally publish it)."""
    if xlsx_file.stat().st_size > MAX_FILE_BYTES:
        raise click.ClickException(f"文件太大（上限 {MAX_FILE_BYTES // 1048576} MB）")
    result = import_xlsform(xlsx_file.read_bytes(), xlsx_file.name)
    for error in result.errors:
        click.echo(str(error), err=True)
    for notice in result.notices:
        click.echo(f"注意 / note: {notice}", err=True)
    if result.errors:
        raise click.ClickException(
            f"{len(result.errors)} 个错误，未发布 / errors, nothing published"
        )
    d = result.definition
    inner = sum(len(f.get("fields", ())) for f in d["fields"] if f["type"] == "repeat")
    click.echo(
        f"表单 {d['id']} v{d['version']}: {len(d['fields'])} 个字段"
        + (f"（另有重复组内 {inner} 个）" if inner else "")
        + "，检查通过"
    )
    if dry_run or not publish:
        if not dry_run:
            click.echo(json.dumps(d, ensure_ascii=False, indent=1))
        return
    try:
        new = publish_imported(storage(), d, at=now_iso())
    except ValueError:
        raise click.ClickException(
            f"{d['id']} v{d['version']} 已发布且内容不同；请在 settings 表提高 version"
        ) from None
    click.echo(f"已发布 {d['id']} v{d['version']}" if new else "该版本已发布，内容相同")


@click.command("export-xlsform")
@click.argument("form_id")
@click.option("--version", type=int, default=None, help="Default: the newest published version.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@with_appcontext
def export_xlsform_command(form_id: str, version: int | None, output: Path | None):
    """Write a published form as an XLSForm workbook."""
    store = storage()
    if version is None:
        versions = store.form_versions(form_id)
        definition = versions[0] if versions else None
    else:
        definition = store.form_definition(form_id, version)
    if definition is None:
        raise click.ClickException(f"没有已发布的表单 {form_id}")
    output = output or Path(f"{form_id}.v{definition['version']}.xlsx")
    output.write_bytes(export_xlsform(definition))
    click.echo(f"已导出 {output}")


COMMANDS = (import_xlsform_command, export_xlsform_command)
