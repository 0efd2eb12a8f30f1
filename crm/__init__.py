"""The project package and shared kernel: settings, urls, Celery app, tenancy, API access."""

from .celery import app as celery_app

__all__ = ["celery_app"]
