"""Celery tasks of the scoring app: thin, JSON-only, idempotent; they call services."""
