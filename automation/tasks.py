"""Celery tasks of the automation app: thin, JSON-only, idempotent; they call services."""
