"""Request guards that apply to every URL, before any view or query sees the request."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse

from crm.api.errors import error_body

NUL_MESSAGE = "NUL characters (\\u0000) are not allowed."


class RejectNulQueryMiddleware:
    """A query parameter with a NUL character is a 400: PostgreSQL cannot compare text with
    a NUL in it, so such a value would otherwise fail deep inside a filter with a 500. Both
    names and values are checked; the answer is the API's error shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A NUL reaches a parameter only as "%00" or a raw NUL in the query string; most
        # requests (the API's hot paths) have neither, and skip parsing it here.
        query = request.META.get("QUERY_STRING", "")
        if "%00" not in query and "\x00" not in query:
            return self.get_response(request)
        fields = {
            name.replace("\x00", "\\u0000"): [NUL_MESSAGE]
            for name, values in request.GET.lists()
            if "\x00" in name or any("\x00" in value for value in values)
        }
        if fields:
            return JsonResponse(
                error_body(
                    status_code=400,
                    code="invalid",
                    message="The request has invalid query parameters.",
                    fields=fields,
                ),
                status=400,
            )
        return self.get_response(request)


# ----------------------------------------------------------------------------- API routes

API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX)


class _SkippedOnApi:
    """A browser-only middleware that steps aside for ``/api/`` routes.

    The API authenticates every request with its own credential (crm.api.authentication),
    never a session or a cookie; it sends no flash messages and renders no template.
    Sessions, Django's user and messages therefore do nothing for an API request but cost a
    few dozen microseconds each on every call. (CSRF stays Django's own middleware: every
    API view is CSRF-exempt, so it returns at once there.) The subclasses keep their
    parents' names in ``MIDDLEWARE`` order, so Django's checks (the admin needs sessions,
    auth and messages) still find them.
    """

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path_info):
            return self.get_response(request)  # type: ignore[attr-defined]
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(_SkippedOnApi, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_SkippedOnApi, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_SkippedOnApi, _MessageMiddleware):
    pass
