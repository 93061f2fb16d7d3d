"""docs/openapi.yaml stays true: a valid OpenAPI document naming exactly the app's /api/ routes.

A route added to the app without a spec entry (or a spec entry whose route was removed) fails
here, so the fuzzer (tests/test_fuzz_api.py) never silently skips an endpoint.
"""

import schemathesis
from attack_helpers import SPEC_PATH, api_rules, load_spec, spec_operations


def test_the_document_is_valid_openapi():
    schema = schemathesis.openapi.from_path(SPEC_PATH)
    schema.validate()
    assert sum(1 for op in schema.get_all_operations() if op.ok()) == len(spec_operations())


def test_every_api_route_is_described_and_every_described_route_exists(app):
    in_app = api_rules(app)
    in_spec = spec_operations()
    assert sorted(in_app - in_spec) == [], "routes missing from docs/openapi.yaml"
    assert sorted(in_spec - in_app) == [], "docs/openapi.yaml describes routes the app lacks"


def test_every_operation_documents_its_errors_in_the_envelope():
    """Each operation answers 401 unless public; each error response uses the envelope."""
    spec = load_spec()
    envelope = {"#/components/schemas/Error", "#/components/schemas/OffsetConflict"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            public = op.get("security") == []
            assert public or "401" in op["responses"], f"{method} {path} lacks 401"
            for status, response in op["responses"].items():
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    response = spec["components"]["responses"][name]
                if not status.startswith(("4", "5")):
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema.get("$ref") in envelope, f"{method} {path} {status}"
