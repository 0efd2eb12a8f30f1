"""OpenAPI descriptions of our two credential schemes (drf-spectacular extensions)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "crm.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a tenant API key (`create_api_key` or the admin).",
        }


class PlatformJWTScheme(OpenApiAuthenticationExtension):
    target_class = "crm.api.authentication.PlatformJWTAuthentication"
    name = "PlatformJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "HS256 with JWT_SECRET; claims sub, tenant_id, scope, exp.",
        }


def strip_trailing_slashes(result, generator, request, public):
    """Our routes answer with or without the slash; document the canonical form without."""
    result["paths"] = {
        (path.rstrip("/") if path != "/" else path): item for path, item in result["paths"].items()
    }
    return result
