"""Routes of the journeys API under /api/v1/."""

from crm.api.routers import OptionalSlashRouter

from .views import EnrollmentViewSet, JourneyViewSet

router = OptionalSlashRouter()
router.register("journeys", JourneyViewSet, basename="journey")
router.register("journey-enrollments", EnrollmentViewSet, basename="journey-enrollment")

urlpatterns = router.urls
