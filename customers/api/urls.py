"""Routes of the customers API under /api/v1/."""

from crm.api.routers import OptionalSlashRouter

from .views import CustomerViewSet, MergeSuggestionViewSet

router = OptionalSlashRouter()
router.register("customers", CustomerViewSet, basename="customer")
router.register("merge-suggestions", MergeSuggestionViewSet, basename="merge-suggestion")

urlpatterns = router.urls
