"""Routes of the social API under /api/v1/."""

urlpatterns: list = []
