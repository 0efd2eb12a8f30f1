"""factory_boy factories shared by the whole suite."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from crm.models import ApiKey, Club, Region, StaffMembership, StaffRole, Tenant
from marketing.models import MessageTemplate

PASSWORD = "correct-horse-battery"  # every UserFactory user's password, for logging in


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n} Golf")
    region = Region.ZA
    timezone = "Africa/Johannesburg"
    default_phone_region = "ZA"
    currency = "ZAR"

    class Params:
        uk = factory.Trait(
            region=Region.UK, timezone="Europe/London", default_phone_region="GB", currency="GBP"
        )


class ClubFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Club

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Club {n}")
    timezone = factory.SelfAttribute("tenant.timezone")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password(PASSWORD)


class StaffMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffMembership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = StaffRole.ADMIN


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    """An email template that renders for any member: "Hello {{ first_name }}"."""

    class Meta:
        model = MessageTemplate

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Newsletter {n}")
    channel = "email"
    subject = "Hello {{ first_name }}"
    html_body = "<p>Hi {{ first_name }}, see you at {{ club }}.</p>"


__all__ = [
    "PASSWORD",
    "ApiKey",
    "ClubFactory",
    "MessageTemplateFactory",
    "StaffMembershipFactory",
    "TenantFactory",
    "UserFactory",
]
