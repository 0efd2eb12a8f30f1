"""The Celery app: `celery -A crm worker` and `celery -A crm beat`.

Configuration lives in Django settings under the ``CELERY_`` prefix (see
``crm/settings/base.py``). Tasks are JSON-only, acked late and idempotent.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

# Remember whether the settings module was chosen by the caller or defaulted here, so the
# local runner does not hand our default down to the processes it starts (pytest has its own).
SETTINGS_MODULE_DEFAULTED = "DJANGO_SETTINGS_MODULE" not in os.environ
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.base")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Dedicated queues so each kind of work can get its own workers when one machine is not enough.
QUEUES = ("default", "ingest", "sends", "journeys", "scoring", "backfill")
# Each queue has its own exchange and routing key, so a message reaches exactly one queue.
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
app.autodiscover_tasks()
