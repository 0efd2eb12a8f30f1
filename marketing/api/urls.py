"""Routes of the marketing API under /api/v1/."""

urlpatterns: list = []
