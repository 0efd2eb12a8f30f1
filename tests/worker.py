"""A real Celery worker process for the tests that need one (not eager mode).

The process itself is ``crm.devtools.worker.CeleryWorker`` (the benchmarks use it too); here
it gets a queue of its own and reads the pytest-django test database.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from crm.celery import app as celery_app
from crm.celery import set_queue_override
from crm.devtools.worker import CeleryWorker


def subprocess_database_url() -> str:
    """A URL of the pytest-django test database, for processes the tests start."""
    db = connection.settings_dict
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host", "")
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={host}"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


class WorkerProcess(CeleryWorker):
    """A worker on ``queue`` that reads the pytest-django test database; ``start()`` waits
    until it is ready."""

    def __init__(self, queue: str, concurrency: int = 2, env: dict | None = None) -> None:
        worker_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "crm.settings.test",
            "DATABASE_URL": subprocess_database_url(),
            **(env or {}),
        }
        # tests/conftest.py allows sync ORM calls in async contexts (for Playwright) in the
        # test process only; the worker runs with Django's normal checks.
        worker_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        super().__init__(
            queue,
            env=worker_env,
            concurrency=concurrency,
            log_path=Path(f"/tmp/crm-test-worker-{queue}.log"),
        )


@contextmanager
def celery_worker(concurrency: int = 2, env: dict | None = None):
    """Starts a worker on a fresh queue and routes this process's tasks to it."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    set_queue_override(queue)
    worker = WorkerProcess(queue, concurrency=concurrency, env=env)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()
        set_queue_override(None)
        celery_app.conf.task_default_queue = previous
