"""Published form definitions, every version of each."""

import json
from collections.abc import Iterable

from .core import dumps


class FormsMixin:
    """Published forms."""

    # -- forms -------------------------------------------------------------------------------

    def publish_form(self, definition: dict, sha256: str, *, at: str) -> bool:
        """Publish a form version; True if new. A published version never changes."""
        key = (definition["id"], definition["version"])
        row = self.conn.execute(
            "SELECT sha256 FROM forms WHERE form_id = ? AND version = ?", key
        ).fetchone()
        if row:
            if row[0] != sha256:
                raise ValueError(f"form {key[0]} v{key[1]} is published and cannot change")
            return False
        with self.write():
            self.conn.execute(
                "INSERT INTO forms (form_id, version, definition, sha256, published_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (*key, dumps(definition), sha256, at),
            )
            self.log_change("form", f"{key[0]}@{key[1]}", at=at)
        return True

    def form_definition(self, form_id: str, version: int) -> dict | None:
        row = self.conn.execute(
            "SELECT definition FROM forms WHERE form_id = ? AND version = ?", (form_id, version)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def form_definitions(self, keys: Iterable[str]) -> list[dict]:
        """Definitions by "id@version" keys, as the change log names them."""
        return [
            json.loads(r[0])
            for r in self.conn.execute(
                "SELECT definition FROM forms WHERE form_id || '@' || version"
                " IN (SELECT value FROM json_each(?)) ORDER BY form_id, version",
                (json.dumps(list(keys)),),
            )
        ]

    def forms(self) -> list[dict]:
        return [
            json.loads(r[0])
            for r in self.conn.execute("SELECT definition FROM forms ORDER BY form_id, version")
        ]

    def form_versions(self, form_id: str) -> list[dict]:
        """Every published version of a form, newest first."""
        return [
            json.loads(r[0])
            for r in self.conn.execute(
                "SELECT definition FROM forms WHERE form_id = ? ORDER BY version DESC", (form_id,)
            )
        ]
