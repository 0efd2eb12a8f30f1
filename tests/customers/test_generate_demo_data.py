"""generate_demo_data: realistic members, valid local phones, re-runnable."""

from __future__ import annotations

from io import StringIO

import phonenumbers
import pytest
from django.core.management import call_command

from customers.identity import IdentityHints
from customers.models import AliasKind, CustomerProfile, IdentityAlias
from customers.services import identity_resolve

pytestmark = pytest.mark.django_db


def _generate(tenant, n: int, *extra: str) -> str:
    out = StringIO()
    call_command(
        "generate_demo_data", "--tenant", tenant.slug, "--customers", str(n), *extra, stdout=out
    )
    return out.getvalue()


@pytest.mark.parametrize(
    ("fixture", "region", "country_code"),
    [
        ("tenant_a", "ZA", 27),
        ("tenant_b", "GB", 44),
    ],
)
def test_members_have_valid_local_phones_unique_emails_and_aliases(
    request, fixture, region, country_code
):
    tenant = request.getfixturevalue(fixture)

    output = _generate(tenant, 300)

    profiles = CustomerProfile.objects.for_tenant(tenant)
    assert "Generated 300 profiles" in output
    assert profiles.count() == 300
    phones = list(profiles.values_list("phone", flat=True))
    for phone in phones:
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number), phone
        assert number.country_code == country_code
    emails = list(profiles.values_list("email", flat=True))
    assert len(set(emails)) == 300
    assert IdentityAlias.objects.for_tenant(tenant).filter(kind=AliasKind.EMAIL).count() == 300
    assert profiles.exclude(home_club__tenant=tenant).count() == 0
    assert set(profiles.values_list("currency", flat=True)) == {tenant.currency}


def test_generated_people_resolve(tenant_a):
    _generate(tenant_a, 50)
    person = CustomerProfile.objects.for_tenant(tenant_a).first()

    resolution = identity_resolve(
        tenant=tenant_a, hints=IdentityHints(email=person.email, phone=person.phone)
    )

    assert resolution.profile.pk == person.pk
    assert resolution.matched_by == ["email", "phone"]


def test_a_second_run_adds_people_without_collisions(tenant_a):
    _generate(tenant_a, 100)
    _generate(tenant_a, 100)

    assert CustomerProfile.objects.for_tenant(tenant_a).count() == 200
    assert CustomerProfile.objects.for_tenant(tenant_a).values("email").distinct().count() == 200


def test_if_empty_does_nothing_when_customers_exist(tenant_a):
    _generate(tenant_a, 10)

    output = _generate(tenant_a, 10, "--if-empty")

    assert "nothing generated" in output
    assert CustomerProfile.objects.for_tenant(tenant_a).count() == 10
