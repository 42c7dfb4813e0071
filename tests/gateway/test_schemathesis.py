"""A schema-driven fuzz of the API against a live server: no server error, and responses
that conform to the OpenAPI schema the server publishes."""

import hypothesis
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shop.services import customer_create

MAX_EXAMPLES = 40

# The same document /api/schema/ serves, generated without a server at collection time.
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))


@pytest.fixture
def fuzz_target(live_server, catalogue, settings):
    settings.API_THROTTLE_RATES = {"user": "100000/minute", "anon": "100000/minute", "orders": "100000/minute"}
    _, token = customer_create(username="fuzzer", email="fuzzer@example.com")
    return live_server.url, {"Authorization": f"Token {token}"}


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_api_conforms_to_its_schema_and_never_errors(case, fuzz_target):
    base_url, headers = fuzz_target
    case.call_and_validate(base_url=base_url, headers=headers, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])
