"""One error shape for every API error:

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {...}}}

``fields`` is present on validation errors only, keyed by field (nested as the input is).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

logger = logging.getLogger(__name__)


def error_body(*, status_code: int, code: str, message: str, fields=None) -> dict:
    error = {"status": status_code, "code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE; nothing was done.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body(
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                code="too_large",
                message=f"The request body is larger than {limit:,} bytes; send less at a time.",
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        # A service refused: same shape as a serializer's error; 409 for conflicts.
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        status_code = getattr(exc, "status_code", status.HTTP_400_BAD_REQUEST)
        code = "conflict" if status_code == status.HTTP_409_CONFLICT else "invalid"
        return Response(
            error_body(
                status_code=status_code,
                code=code,
                message="The request was refused.",
                fields=fields,
            ),
            status=status_code,
        )
    response = exception_handler(exc, context)
    if response is None:
        # Unexpected: log it with its traceback, answer in the same shape, roll back.
        logger.exception("Unhandled API error", exc_info=exc)
        set_rollback()
        return Response(
            error_body(status_code=500, code="server_error", message="Internal server error."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body(
            status_code=response.status_code,
            code="invalid",
            message="The request has invalid fields.",
            fields=fields,
        )
        return response
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail if not isinstance(detail, dict | list) else exc.default_detail)
    else:  # Http404 / PermissionDenied from Django, turned into DRF responses above
        message = str(response.data.get("detail", "")) if isinstance(response.data, dict) else ""
        code = "not_found" if response.status_code == 404 else "permission_denied"
    response.data = error_body(status_code=response.status_code, code=code, message=message)
    return response


def json_error_response(*, status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        error_body(status_code=status_code, code=code, message=message), status=status_code
    )
