"""The failure limit's client address (crm.api.auth_failures.client_ident) is DRF's
``BaseThrottle.get_ident``, read from META, for every proxy count and X-Forwarded-For."""

from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import BaseThrottle

from crm.api.auth_failures import client_ident

FORWARDED = [
    None,
    "",
    "198.51.100.9",
    "198.51.100.9, 10.0.0.1",
    " 198.51.100.9 ,10.0.0.1 , 10.0.0.2 ",
    "not an address",
]


@pytest.mark.parametrize("num_proxies", [None, 0, 1, 2, 5])
@pytest.mark.parametrize("forwarded", FORWARDED)
def test_client_ident_is_drf_get_ident(monkeypatch, num_proxies, forwarded):
    monkeypatch.setattr(api_settings, "NUM_PROXIES", num_proxies)
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    django_request = APIRequestFactory().get("/api/v1/tenant", REMOTE_ADDR="203.0.113.7", **headers)

    for request in (django_request, Request(django_request)):
        assert client_ident(request) == BaseThrottle().get_ident(request)
