"""schemathesis against the app's own OpenAPI schema: no 5xx, and responses match the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from server_util import serving

# Not checked: whether the schema spells out every rule (batch size <= dataset size, model names
# that exist...); those values get a 4xx with a reason, which the other checks do verify.
SCHEMA_COMPLETENESS = [positive_data_acceptance, negative_data_rejection]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, trained_home):
    with serving(tmp_path_factory.mktemp("fuzz"), models_from=trained_home) as srv:
        yield schemathesis.openapi.from_url(srv.base + "/openapi.json")


def test_api_never_fails_and_matches_its_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(excluded_checks=SCHEMA_COMPLETENESS)
        check()
