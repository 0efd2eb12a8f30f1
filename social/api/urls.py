"""Routes of the social API under /api/v1/social/."""

from crm.api.routers import OptionalSlashRouter

from .views import ConnectionViewSet, PostViewSet, PromotionViewSet, PublicationViewSet

router = OptionalSlashRouter()
router.register("connections", ConnectionViewSet, basename="social-connection")
router.register("posts", PostViewSet, basename="social-post")
router.register("publications", PublicationViewSet, basename="social-publication")
router.register("promotions", PromotionViewSet, basename="social-promotion")

urlpatterns = router.urls
