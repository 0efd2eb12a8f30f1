from django.apps import AppConfig


class CustomersConfig(AppConfig):
    """Profiles, identity aliases, identity resolution, merge, activities (timeline), notes, sync
    log and the event ingestion pipeline.
    """

    name = "customers"
    verbose_name = "Customers"
    default_auto_field = "django.db.models.BigAutoField"
