"""The forms page of the admin desk, /desk/admin/forms (issue 15): the published forms with
their versions, and the XLSForm import: upload → preview (the parsed fields and every error of
the file, nothing written) → publish (the same workbook, carried in the page, imported again and
published; nothing is published when there is any error). Admins only; the POST carries the CSRF
token (web.login_required) and publishing is audited (`form.publish` with the actor).

Each form lists its published versions (when published, how many submissions of each the admin's
villages hold) and what changed from one version to the next (forms/diff.py), repeat groups'
inner fields included. Publishing a new version of an existing form keeps the old versions; a
published id and version never changes (storage refuses other content for it). The routes are
added to the admin blueprint (server/admin.py) so the admin pages share one prefix and one
login rule."""

import base64
import binascii

from flask import flash, g, redirect, render_template, request, url_for

from forms import diff as form_diff
from forms.definitions import zh_text
from forms.xlsform import XlsError, import_xlsform

from .admin import ADMIN, bp
from .context import now_iso, storage
from .web import login_required
from .xlsform_cli import MAX_FILE_BYTES, publish_imported


def _workbook() -> bytes:
    """The uploaded file, or the workbook the preview page carried back; ValueError if none."""
    if request.form.get("confirm") == "1":
        try:
            data = base64.b64decode(request.form.get("workbook", ""), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("文件内容无效，请重新上传") from None
    else:
        upload = request.files.get("file")
        data = upload.read(MAX_FILE_BYTES + 1) if upload else b""
    if not data:
        raise ValueError("请选择 XLSForm 文件（.xlsx）")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"文件太大（最多 {MAX_FILE_BYTES // 1048576} MB）")
    return data


@bp.route("/forms", methods=["GET", "POST"])
@login_required(roles=ADMIN)
def forms():
    store = storage()
    preview = None
    if request.method == "POST":
        try:
            data = _workbook()
        except ValueError as exc:
            flash(f"未发布：{exc}")
            return redirect(url_for("admin.forms"))
        filename = request.form.get("filename") or getattr(
            request.files.get("file"), "filename", ""
        )
        result = import_xlsform(data, filename)
        d = result.definition
        if request.form.get("confirm") == "1" and result.ok:
            try:
                new = publish_imported(store, d, user_id=g.user["id"], at=now_iso())
            except ValueError:
                result.errors.append(
                    XlsError(
                        "settings",
                        2,
                        "version",
                        f"{d['id']} v{d['version']} 已发布且内容不同，请提高 version",
                        "this id and version is published with other content",
                    )  # fmt: skip
                )
            else:
                flash(f"已发布 {d['id']} v{d['version']}" if new else "该版本已发布，内容相同")
                return redirect(url_for("admin.forms"))
        preview = {
            "definition": d if result.ok else None,
            "errors": result.errors,
            "notices": result.notices,
            "workbook": base64.b64encode(data).decode("ascii") if result.ok else "",
            "filename": filename,
        }
    return render_template("admin_forms.html", published=published_forms(store), preview=preview)


def published_forms(store) -> list[dict]:
    """Each form with its published versions, newest first: when each was published, how many
    submissions the admin's villages hold of it, and what changed from the version before
    (forms/diff.py; None for a form's first version)."""
    by_form: dict[str, list[dict]] = {}
    for row in store.desk_form_versions(g.villages):
        by_form.setdefault(row["form_id"], []).append(row)
    out = []
    for form_id, rows in by_form.items():
        versions, previous = [], None
        for row in rows:  # oldest first
            versions.append({**row, "diff": _changes(previous, row["definition"])})
            previous = row["definition"]
        newest = rows[-1]["definition"]
        out.append(
            {
                "id": form_id,
                "title": (newest.get("title") or {}).get("zh") or form_id,
                "versions": versions[::-1],
            }
        )
    return out


def _changes(old: dict | None, new: dict) -> dict | None:
    """diff(old, new) as the page shows it: each item with its repeat group's label and each
    change as one line of Chinese."""
    if old is None:
        return None
    changes = form_diff.diff(old, new)
    labels = {n: zh_text(s.get("label")) or n for n, (s, _) in form_diff.fields_of(old).items()}
    labels.update(
        {n: zh_text(s.get("label")) or n for n, (s, _) in form_diff.fields_of(new).items()}
    )
    for kind in ("added", "removed", "changed"):
        for item in changes[kind]:
            item["repeat_label"] = (
                labels.get(item["repeat"], item["repeat"]) if item["repeat"] else None
            )
            item["lines"] = [form_diff.describe(c) for c in item.get("changes", [])]
    changes["empty"] = not any(changes[k] for k in ("added", "removed", "changed"))
    return changes
