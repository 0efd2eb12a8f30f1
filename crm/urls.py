from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from crm.api.errors import json_error_response
from marketing import public as marketing_public

from .health import healthz, readyz
from .metrics import metrics_view

api_v1: list[URLPattern | URLResolver] = [
    path("webhooks/messaging", marketing_public.messaging_webhook, name="messaging-webhook"),
    path("", include("crm.api.urls")),
    path("", include("customers.api.urls")),
    path("", include("marketing.api.urls")),
    path("", include("scoring.api.urls")),
    path("", include("automation.api.urls")),
    path("social/", include("social.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("u/<str:token>", marketing_public.unsubscribe, name="unsubscribe"),
    path("t/o/<str:token>.gif", marketing_public.track_open, name="track-open"),
    path("t/c/<str:token>", marketing_public.track_click, name="track-click"),
    path("api/v1/", include(api_v1)),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[]
        ),
        name="swagger-ui",
    ),
]


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return json_error_response(status_code=404, code="not_found", message="Not found.")
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return json_error_response(
            status_code=500, code="server_error", message="Internal server error."
        )
    return defaults.server_error(request)


def handler400(request, exception=None):
    if _is_api(request):
        return json_error_response(status_code=400, code="bad_request", message="Bad request.")
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if _is_api(request):
        return json_error_response(
            status_code=403, code="permission_denied", message="Permission denied."
        )
    return defaults.permission_denied(request, exception)
