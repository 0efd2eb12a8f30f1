"""Routes of the scoring API under /api/v1/."""

urlpatterns: list = []
