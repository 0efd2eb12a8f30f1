"""Celery tasks of the social app: thin, JSON-only, idempotent; they call services."""
