"""Routes of the backfill API under /api/v1/."""

urlpatterns: list = []
