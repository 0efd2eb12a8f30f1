"""Celery tasks of the marketing app: thin, JSON-only, idempotent; they call services."""
