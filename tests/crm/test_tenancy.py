"""Tenancy guard rails."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from crm.checks import tenant_models_use_scoped_manager
from crm.models import Club
from tests.factories import ClubFactory


def test_every_tenant_owned_model_has_the_scoped_manager():
    assert tenant_models_use_scoped_manager() == []


@pytest.mark.django_db
def test_for_tenant_returns_only_that_tenants_rows(tenant_a, tenant_b):
    ClubFactory(tenant=tenant_a, name="A1")
    ClubFactory(tenant=tenant_b, name="B1")

    assert list(Club.objects.for_tenant(tenant_a).values_list("name", flat=True)) == ["A1"]


def test_for_tenant_refuses_none():
    with pytest.raises(ValueError, match="needs a tenant"):
        Club.objects.for_tenant(None)


@pytest.mark.django_db
def test_system_checks_pass():
    call_command("check", fail_level="WARNING")
