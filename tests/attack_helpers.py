"""Shared by the attack suite (OpenAPI check, fuzzer, scope matrix): the spec and the URL map."""

import re
from functools import cache
from pathlib import Path

import yaml

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


@cache
def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def spec_operations() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in docs/openapi.yaml."""
    return {
        (method.upper(), path) for path, item in load_spec()["paths"].items() for method in item
    }


def openapi_path(rule: str) -> str:
    """A Flask rule in OpenAPI's spelling: `<int:token_id>` becomes `{token_id}`."""
    return _CONVERTER.sub(r"{\1}", rule)


def app_rules(app) -> set[tuple[str, str]]:
    """(METHOD, Flask rule) of every route the app serves."""
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    }


def api_rules(app) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every /api/ route."""
    return {
        (method, openapi_path(rule)) for method, rule in app_rules(app) if rule.startswith("/api/")
    }
