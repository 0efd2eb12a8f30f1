"""Operator commands: create_tenant (idempotent) and create_api_key (key on the last line)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from crm.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db


def _call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_fills_region_defaults_and_is_idempotent():
    first = _call("create_tenant", "royal-durban", "--name", "Royal Durban", "--region", "ZA")
    second = _call("create_tenant", "royal-durban", "--name", "Other name", "--region", "UK")

    tenant = Tenant.objects.get(slug="royal-durban")
    assert first.startswith("Created")
    assert second.startswith("Exists")
    assert Tenant.objects.filter(slug="royal-durban").count() == 1
    assert (tenant.name, tenant.region, tenant.timezone, tenant.default_phone_region) == (
        "Royal Durban",
        "ZA",
        "Africa/Johannesburg",
        "ZA",
    )
    assert tenant.currency == "ZAR"


def test_create_tenant_uk_defaults():
    _call("create_tenant", "st-andrews", "--name", "St Andrews", "--region", "UK")

    tenant = Tenant.objects.get(slug="st-andrews")
    assert (tenant.timezone, tenant.default_phone_region, tenant.currency) == (
        "Europe/London",
        "GB",
        "GBP",
    )


def test_create_tenant_rejects_a_bad_timezone():
    with pytest.raises(CommandError, match="timezone"):
        _call("create_tenant", "x", "--name", "X", "--region", "UK", "--timezone", "Nowhere/City")
    assert not Tenant.objects.filter(slug="x").exists()


def test_create_api_key_prints_a_working_key_alone_on_the_last_line(tenant_a):
    output = _call("create_api_key", "--tenant", tenant_a.slug, "--name", "SCL sync")

    raw_key = output.strip().splitlines()[-1]
    assert " " not in raw_key
    assert ApiKey.objects.get(tenant=tenant_a).name == "SCL sync"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert client.get("/api/v1/tenant").json()["slug"] == tenant_a.slug


def test_create_api_key_for_an_unknown_tenant_fails():
    with pytest.raises(CommandError, match="No tenant"):
        _call("create_api_key", "--tenant", "nobody", "--name", "x")
