"""The public API against its own OpenAPI schema: Schemathesis generates requests for every operation
(valid and invalid), sends them in-process to the WSGI app as an owner with a token, and checks that no
response is a 500 and every response matches the schema (status code, content type, body). Bounded:
a few examples per operation, no shrinking.

One check is left out: "a schema-valid request is accepted". Business rules a schema cannot state (a
period of at most 400 days, an id that must name an existing row of this workspace, a URL that must pass
the SSRF guard) rightly answer 400 to generated data that fits the schema; the 400 is documented and
checked like any other response."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import positive_data_acceptance

from accounts.models import User
from accounts.services import api_token_create
from tenants.models import Tenant

pytestmark = pytest.mark.django_db
HOST = "alpha.localhost"


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """The WSGI handler's requests share the test's connection and transaction, as Django's test client
    arranges: the end of a request must not close that connection."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(tenant_a: Tenant, in_test_transaction: None) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", WSGIHandler(), headers={"Host": HOST})


@pytest.fixture
def auth(tenant_a: Tenant, owner_a: User) -> dict[str, str]:
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="schemathesis")
    return {"Host": HOST, "Authorization": f"Token {raw}"}


# Every operation gets a bounded Hypothesis run of its own; all failures are gathered and reported
# together. (Schemathesis' pytest integration `from_fixture` does not run on pytest 9 yet.)
def test_every_operation_answers_per_its_schema(api_schema: Any, auth: dict[str, str]) -> None:
    failures: dict[str, str] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=auth, excluded_checks=[positive_data_acceptance])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = str(exc)[:1500]
    assert operations > 50
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
