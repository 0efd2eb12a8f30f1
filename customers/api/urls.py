"""Routes of the customers API under /api/v1/."""

from django.urls import path

from crm.api.routers import OptionalSlashRouter

from .views import CustomerViewSet, EventIngestView, MergeSuggestionViewSet, NoteViewSet

router = OptionalSlashRouter()
router.register("customers", CustomerViewSet, basename="customer")
router.register("merge-suggestions", MergeSuggestionViewSet, basename="merge-suggestion")
router.register("notes", NoteViewSet, basename="note")

urlpatterns = [
    path("events", EventIngestView.as_view(), name="events"),
    path("events/", EventIngestView.as_view()),
    *router.urls,
]
