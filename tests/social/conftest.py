"""Fixtures of the social tests: the platforms live at fake base URLs, answered by
``responses`` (no network); the http backend is on so the publishers really call them."""

from __future__ import annotations

import pytest
import responses

GRAPH = "https://graph.test"
DIALOG = "https://dialog.test"
X_API = "https://x-api.test"
X_AUTH = "https://x-auth.test/i/oauth2/authorize"
VERSION = "v26.0"


@pytest.fixture(autouse=True)
def _platforms(settings):
    settings.SOCIAL_BACKEND = "http"
    settings.SOCIAL_FACEBOOK_GRAPH_URL = GRAPH
    settings.SOCIAL_FACEBOOK_DIALOG_URL = DIALOG
    settings.SOCIAL_GRAPH_API_VERSION = VERSION
    settings.SOCIAL_FACEBOOK_APP_ID = "fb-app"
    settings.SOCIAL_FACEBOOK_APP_SECRET = "fb-secret"
    settings.SOCIAL_X_API_URL = X_API
    settings.SOCIAL_X_AUTHORIZE_URL = X_AUTH
    settings.SOCIAL_X_CLIENT_ID = "x-client"
    settings.SOCIAL_X_CLIENT_SECRET = "x-secret"


@pytest.fixture
def platform():
    """The fake platforms: every request must be registered, none goes out."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def graph(path: str) -> str:
    return f"{GRAPH}/{VERSION}/{path}"


def x(path: str) -> str:
    return f"{X_API}/{path}"
