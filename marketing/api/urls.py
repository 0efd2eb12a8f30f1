"""Routes of the marketing API under /api/v1/."""

from crm.api.routers import OptionalSlashRouter

from .views import CampaignViewSet, SegmentViewSet, TemplateViewSet

router = OptionalSlashRouter()
router.register("segments", SegmentViewSet, basename="segment")
router.register("templates", TemplateViewSet, basename="template")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = router.urls
