"""Request guards that apply to every URL, before any view or query sees the request."""

from __future__ import annotations

from collections.abc import Callable

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
