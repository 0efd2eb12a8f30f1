from django.apps import AppConfig


class MarketingConfig(AppConfig):
    """Segments, campaigns, A/B variants, templates, messaging backends, sends, interactions,
    webhooks and suppression.
    """

    name = "marketing"
    verbose_name = "Marketing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from crm.registry import (
            register_customer_panel,
            register_erase_hook,
            register_export_section,
            register_merge_hook,
            register_retention_step,
        )

        from . import tasks  # noqa: F401  (registers the tasks services queue by name)
        from .campaigns import customer_marketing_panel
        from .retention import interaction_retention, message_retention
        from .rules import register_marketing_fields
        from .segments import (
            erase_marketing,
            export_interactions,
            export_memberships,
            export_messages,
            export_profile_changes,
            export_segment_changes,
            move_memberships,
            move_messages,
            profile_changes_retention,
        )

        register_marketing_fields()
        register_merge_hook("segment_memberships", move_memberships)
        register_merge_hook("marketing_messages", move_messages)
        register_erase_hook("marketing", erase_marketing)
        register_customer_panel("marketing", customer_marketing_panel)
        register_retention_step("message_addresses", message_retention)
        register_retention_step("interactions_rollup", interaction_retention)
        register_retention_step("profile_changes", profile_changes_retention)
        register_export_section(
            "segment_memberships",
            title="Segments you are in",
            rows=export_memberships,
            covers=["marketing.SegmentMembership"],
        )
        register_export_section(
            "segment_changes",
            title="Segments entered and left",
            rows=export_segment_changes,
            covers=["marketing.SegmentChange"],
        )
        register_export_section(
            "segment_bookkeeping",
            title="Last change to your profile (a transaction number, for segment refreshes)",
            rows=export_profile_changes,
            covers=["marketing.ProfileChange"],
        )
        register_export_section(
            "messages", title="Messages", rows=export_messages, covers=["marketing.Message"]
        )
        register_export_section(
            "interactions",
            title="What you did with our messages",
            rows=export_interactions,
            covers=["marketing.Interaction"],
        )
