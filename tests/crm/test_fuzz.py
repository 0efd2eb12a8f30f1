"""Schema-driven fuzzing of the whole API: every operation of the OpenAPI schema
(/api/schema/) gets generated requests (schemathesis: the schema's examples, its boundary
and negative values, and random ones), sent through Django's WSGI app with a valid tenant
API key. Whatever the input, the API must never answer 5xx.

Bounded for CI (2 cores): a few dozen examples per operation, derandomized so a run is
repeatable; a failure prints the reproducing request.
"""

from __future__ import annotations

import importlib
import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from crm.services import api_key_create
from customers.models import Note
from marketing.models import Campaign, MessageTemplate, Segment, SegmentType
from tests.customers.helpers import person

MAX_EXAMPLES = 25


def _all_scopes() -> list[str]:
    """Every scope an API key can hold, if the branch defines scopes (``crm.api.scopes``);
    an empty list otherwise (a key without scopes may then do everything)."""
    try:
        module = importlib.import_module("crm.api.scopes")
    except ImportError:
        return []
    for name in ("ALL_SCOPES", "SCOPES", "SCOPE_CHOICES"):
        value = getattr(module, name, None)
        if value:
            return sorted(v[0] if isinstance(v, tuple) else str(v) for v in value)
    return []


# Loaded at collection (the schema view reads no database). schemathesis's lazy loader
# (``from_fixture``) does not work under pytest 9, so the key is given per call instead.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def existing(tenant_a, club_a) -> dict[str, list[str]]:
    """Objects of the tenant, so that operations on ``/{id}`` also reach a real object (not
    only 404): ids by the collection their path starts with."""
    customer = person(tenant_a, email="fuzz@example.com", first_name="Fuzz")
    template = MessageTemplate.objects.create(
        tenant=tenant_a, name="Fuzz", channel="email", subject="Hi", html_body="<p>Hi</p>"
    )
    segment = Segment.objects.create(tenant=tenant_a, name="Fuzz", type=SegmentType.STATIC)
    campaign = Campaign.objects.create(
        tenant=tenant_a, name="Fuzz", segment=segment, channels=["email"], email_template=template
    )
    note = Note.objects.create(
        tenant=tenant_a, customer=customer, body="Fuzz", author_ref="test", author_name="Test"
    )
    return {
        "clubs": [str(club_a.pk)],
        "customers": [str(customer.pk)],
        "templates": [str(template.pk)],
        "segments": [str(segment.pk)],
        "campaigns": [str(campaign.pk)],
        "notes": [str(note.pk)],
    }


@pytest.fixture
def api_key_header(db, tenant_a, club_a):
    # The WSGI handler closes "old" connections at each request's start and end; in a test
    # that would close the connection holding the test's transaction (Django's own test
    # client disconnects the same receivers).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        issued = api_key_create(tenant=tenant_a, name="Fuzzer", scopes=_all_scopes())
        yield {"Authorization": f"Api-Key {issued.raw_key}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_a_server_error(case, api_key_header, existing):
    collection = case.path.removeprefix("/api/v1/").split("/", 1)[0]
    generated = (case.path_parameters or {}).get("id")
    if generated is not None and collection in existing and zlib.crc32(str(generated).encode()) % 2:
        # About half of the generated ids (the same half every run) name a real object.
        case.path_parameters["id"] = existing[collection][0]
    response = case.call(headers=api_key_header)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} answered {response.status_code}: "
        f"{response.text[:500]}\n{case.as_curl_command()}"
    )
