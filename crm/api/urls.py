from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ClubViewSet, CurrentTenantView

router = SimpleRouter(trailing_slash="/?")
router.register("clubs", ClubViewSet, basename="club")

urlpatterns = [
    path("tenant", CurrentTenantView.as_view(), name="tenant-current"),
    *router.urls,
]
