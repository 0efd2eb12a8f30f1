"""Celery tasks of the backfill app: thin, JSON-only, idempotent; they call services."""
