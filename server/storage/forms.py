"""Published form definitions, every version of each."""

import json
from collections.abc import Iterable

from .core import dumps


class FormsMixin:
    """Published forms."""

    # -- forms -------------------------------------------------------------------------------

    def publish_form(self, definition: dict, sha256: str, *, at: str) -> bool:
        """Publish a form version; True if new. A published version never changes.

        The insert itself tells whether the version is new (ON CONFLICT DO NOTHING), so two
        servers publishing the same version at once on PostgreSQL do not both try to add it.
        """
        form_id, version = definition["id"], definition["version"]
        with self.write():
            new = self.scalar(
                "INSERT INTO forms (form_id, version, definition, sha256, published_at)"
                " VALUES (:form_id, :version, :definition, :sha256, :at)"
                " ON CONFLICT (form_id, version) DO NOTHING RETURNING version",
                form_id=form_id,
                version=version,
                definition=dumps(definition),
                sha256=sha256,
                at=at,
            )
            if new is not None:
                self.log_change("form", f"{form_id}@{version}", at=at)
                return True
        stored = self.scalar(
            "SELECT sha256 FROM forms WHERE form_id = :form_id AND version = :version",
            form_id=form_id,
            version=version,
        )
        if stored != sha256:
            raise ValueError(f"form {form_id} v{version} is published and cannot change")
        return False

    def form_definition(self, form_id: str, version: int) -> dict | None:
        definition = self.scalar(
            "SELECT definition FROM forms WHERE form_id = :form_id AND version = :version",
            form_id=form_id,
            version=version,
        )
        return json.loads(definition) if definition is not None else None

    def form_definitions(self, keys: Iterable[str]) -> list[dict]:
        """Definitions by "id@version" keys, as the change log names them."""
        keys = list(keys)
        if not keys:
            return []
        return self._definitions(
            "WHERE form_id || '@' || CAST(version AS TEXT) IN :keys", keys=keys
        )

    def forms(self) -> list[dict]:
        return self._definitions("")

    def form_versions(self, form_id: str) -> list[dict]:
        """Every published version of a form, newest first."""
        return self._definitions("WHERE form_id = :form_id", order="version DESC", form_id=form_id)

    def _definitions(self, where: str, *, order: str = "form_id, version", **params) -> list[dict]:
        """The parsed definitions of the forms `where` selects, in `order`."""
        return [
            json.loads(definition)
            for definition in self.q(
                f"SELECT definition FROM forms {where} ORDER BY {order}", **params
            ).scalars()
        ]
