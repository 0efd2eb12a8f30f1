"""Celery tasks of the customers app: thin, JSON-only, idempotent; they call services."""
