"""Bringing a database up to date: schema upgrades and the built-in forms."""

import hashlib

from forms.compiler import compile_form
from forms.definitions import load_builtin

from .storage import Storage, dumps


def definition_sha256(definition: dict) -> str:
    return hashlib.sha256(dumps(definition).encode()).hexdigest()


def init_db(store: Storage, *, at: str) -> list[str]:
    """Upgrade the schema in place and publish built-in form versions not yet published."""
    store.migrate()
    published = []
    for definition in load_builtin():
        compile_form(definition)
        if store.publish_form(definition, definition_sha256(definition), at=at):
            published.append(f"{definition['id']} v{definition['version']}")
    return published
