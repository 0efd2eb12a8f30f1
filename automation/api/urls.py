"""Routes of the automation API under /api/v1/."""

urlpatterns: list = []
