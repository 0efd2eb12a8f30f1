"""Routes of the customers API under /api/v1/."""

urlpatterns: list = []
