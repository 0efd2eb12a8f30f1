from django.apps import AppConfig


class SocialConfig(AppConfig):
    """Social connections (OAuth, encrypted tokens), posts, publishing and competition
    promotion. See docs/social.md."""

    name = "social"
    verbose_name = "Social"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from crm.registry import register_campaign_channel, register_event_subscriber

        from . import tasks  # noqa: F401  (registers the tasks services queue by name)
        from .campaign_channel import NAME, SOCIAL_CHANNEL
        from .promotion import on_competition_events

        register_event_subscriber("social.promotion", on_competition_events)
        register_campaign_channel(NAME, SOCIAL_CHANNEL)
