"""The Celery app: `celery -A crm worker` and `celery -A crm beat`.

Configuration lives in Django settings under the ``CELERY_`` prefix (see
``crm/settings/base.py``). Tasks are JSON-only, acked late and idempotent.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

# Connects the Celery signals that carry the request id into tasks and make workers log
# through Django's LOGGING (JSON lines); imported before the worker sets up its logging.
from crm import observability  # noqa: F401

# Remember whether the settings module was chosen by the caller or defaulted here, so the
# local runner does not hand our default down to the processes it starts (pytest has its own).
SETTINGS_MODULE_DEFAULTED = "DJANGO_SETTINGS_MODULE" not in os.environ
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.base")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Dedicated queues so each kind of work can get its own workers when one machine is not enough.
QUEUES = ("default", "ingest", "sends", "journeys", "scoring", "backfill", "social")
# Each queue has its own exchange and routing key, so a message reaches exactly one queue.
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
# Tasks that go to a queue other than "default".
TASK_QUEUES = {
    "customers.process_events": "ingest",
    "customers.ingest_events": "ingest",
    "marketing.prepare_run": "sends",
    "marketing.send_run": "sends",
    "marketing.sync_segment": "sends",
    "scoring.run_due": "scoring",
    "scoring.score_tenant": "scoring",
    "automation.advance_due_journeys": "journeys",
    "automation.advance_journeys": "journeys",
    "automation.send_journey_messages": "sends",
    "automation.run_segment_triggers": "journeys",
    "automation.run_date_triggers": "journeys",
    "backfill.import_run": "backfill",
    # One platform call (or a few) per task: their own workers, so a slow platform never
    # delays sends. The social sweeps themselves are quick and stay on "default".
    "social.publish": "social",
}
# Tests (and operators debugging one worker) can send every task to one queue.
_queue_override: str | None = None


def set_queue_override(queue: str | None) -> None:
    global _queue_override
    _queue_override = queue


def route_task(name, args, kwargs, options, task=None, **kw):
    """The ``task_routes`` router: ``CRM_TASK_QUEUE`` (or the override) wins, then the map."""
    override = _queue_override or os.environ.get("CRM_TASK_QUEUE")
    if override:
        return {"queue": override}
    queue = TASK_QUEUES.get(name)
    return {"queue": queue} if queue else None


app.conf.task_routes = (route_task,)
app.autodiscover_tasks()
