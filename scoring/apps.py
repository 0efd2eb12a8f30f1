from django.apps import AppConfig


class ScoringConfig(AppConfig):
    """Engagement and churn scoring, batch jobs, analytics endpoints and dashboards."""

    name = "scoring"
    verbose_name = "Scoring"
    default_auto_field = "django.db.models.BigAutoField"
