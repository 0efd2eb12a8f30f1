from django.apps import AppConfig


class ScoringConfig(AppConfig):
    """Engagement and churn scores, the nightly run, analytics and dashboards."""

    name = "scoring"
    verbose_name = "Scoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from crm.registry import register_export_section

        from . import tasks  # noqa: F401  (registers the tasks services queue by name)
        from .analytics import export_scores

        register_export_section(
            "scores",
            title="Scores (engagement and churn risk, with reasons)",
            rows=export_scores,
            covers=["scoring.Score"],
        )
