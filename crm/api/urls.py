from django.urls import path

from .routers import OptionalSlashRouter
from .views import ClubViewSet, CurrentTenantView

router = OptionalSlashRouter()
router.register("clubs", ClubViewSet, basename="club")

urlpatterns = [
    path("tenant", CurrentTenantView.as_view(), name="tenant-current"),
    *router.urls,
]
