"""Routes of the marketing API under /api/v1/."""

from crm.api.routers import OptionalSlashRouter

from .views import SegmentViewSet

router = OptionalSlashRouter()
router.register("segments", SegmentViewSet, basename="segment")

urlpatterns = router.urls
