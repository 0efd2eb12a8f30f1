from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ValidationError

from customers.identity import normalize_email, normalize_phone
from customers.models import CustomerProfile, LifecycleStage, ProfileStatus
from customers.selectors import HIDDEN_STATUSES, customer_search, customers_updated_since


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(method="filter_email")
    phone = django_filters.CharFilter(method="filter_phone")
    status = django_filters.ChoiceFilter(choices=ProfileStatus.choices, method="filter_status")
    lifecycle_stage = django_filters.ChoiceFilter(choices=LifecycleStage.choices)
    club = django_filters.UUIDFilter(field_name="home_club_id")
    q = django_filters.CharFilter(method="filter_q", max_length=100)
    updated_since = django_filters.IsoDateTimeFilter(method="filter_updated_since")

    class Meta:
        model = CustomerProfile
        fields: list[str] = []

    def filter_queryset(self, queryset):
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.exclude(status__in=HIDDEN_STATUSES)
        return super().filter_queryset(queryset)

    def filter_status(self, queryset, name, value):
        return queryset.filter(status=value)

    def filter_email(self, queryset, name, value):
        try:
            return queryset.filter(email=normalize_email(value))
        except DjangoValidationError as exc:
            raise ValidationError({"email": exc.messages}) from exc

    def filter_phone(self, queryset, name, value):
        region = self.request.user.tenant.default_phone_region
        try:
            return queryset.filter(phone=normalize_phone(value, region=region))
        except DjangoValidationError as exc:
            raise ValidationError({"phone": exc.messages}) from exc

    def filter_updated_since(self, queryset, name, value):
        return customers_updated_since(queryset, tenant=self.request.user.tenant, since=value)

    def filter_q(self, queryset, name, value):
        return customer_search(queryset, value)
