"""The API's content negotiation (crm.api.negotiation): the shortcut answers exactly what
DRF's own negotiation answers, and every other header still gets DRF's 406 or 415."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIClient

from crm.api.negotiation import ApiContentNegotiation
from crm.api.parsers import JSONParser

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html",
    "text/html, */*;q=0.8",
    "application/json, text/html",
    "",
]
QUERIES = ["", "format=json", "format=api", "other=1", "format="]


def _request(accept: str | None, query: str = "", content_type: str | None = None) -> Request:
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    if content_type is None:
        django_request = RequestFactory().get(f"/api/v1/x?{query}", **extra)
    else:
        django_request = RequestFactory().post(
            f"/api/v1/x?{query}", b"{}", content_type=content_type, **extra
        )
    return Request(django_request, parsers=[JSONParser()])


def _outcome(negotiator, request, renderers, suffix=None):
    try:
        renderer, media_type = negotiator.select_renderer(request, renderers, suffix)
    except Exception as exc:  # the very exception is compared
        return type(exc).__name__
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize(
    "renderers", [[JSONRenderer()], [JSONRenderer(), BrowsableAPIRenderer()]], ids=["1", "2"]
)
@pytest.mark.parametrize("suffix", [None, "json", "api"])
def test_the_renderer_chosen_is_drfs_choice(accept, query, renderers, suffix):
    ours = _outcome(ApiContentNegotiation(), _request(accept, query), renderers, suffix)
    theirs = _outcome(DefaultContentNegotiation(), _request(accept, query), renderers, suffix)

    assert ours == theirs


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/JSON",
        "",
    ],
)
@pytest.mark.parametrize("parsers", [[JSONParser()], [FormParser(), JSONParser()]], ids=["1", "2"])
def test_the_parser_chosen_is_drfs_choice(content_type, parsers):
    ours = ApiContentNegotiation().select_parser(_request(None, content_type=content_type), parsers)
    theirs = DefaultContentNegotiation().select_parser(
        _request(None, content_type=content_type), parsers
    )

    assert ours is theirs


def test_the_api_uses_it():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is ApiContentNegotiation


def test_an_unacceptable_accept_header_is_still_406(api_key_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a.raw_key}")

    response = client.get("/api/v1/tenant", HTTP_ACCEPT="text/html")

    assert response.status_code == 406


def test_a_body_of_another_type_is_still_415(api_key_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a.raw_key}")

    response = client.post(
        "/api/v1/customers/resolve", b"email=a@example.com", content_type="text/plain"
    )

    assert response.status_code == 415


def test_the_common_headers_are_served(api_key_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a.raw_key}")

    for accept in (None, "*/*", "application/json"):
        extra = {} if accept is None else {"HTTP_ACCEPT": accept}
        response = client.post(
            "/api/v1/customers/resolve",
            b'{"email": "neg@example.com"}',
            content_type="application/json",
            **extra,
        )
        assert response.status_code in (200, 201), response.content
        assert response["Content-Type"] == "application/json"


def test_drf_would_refuse_what_the_shortcut_never_sees():
    # The shortcut's precondition is narrow: a header DRF cannot serve is not taken by it.
    with pytest.raises(NotAcceptable):
        ApiContentNegotiation().select_renderer(_request("text/html"), [JSONRenderer()])
