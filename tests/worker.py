"""A real Celery worker process for the tests that need one (not eager mode).

The worker listens on a queue of its own, so a developer's `make run` worker on the same
Redis never takes the test's tasks, and it reads the pytest-django test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from crm.celery import app as celery_app
from crm.celery import set_queue_override

ROOT = Path(__file__).resolve().parents[1]


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


class WorkerProcess:
    def __init__(self, queue: str, concurrency: int = 2, env: dict | None = None) -> None:
        self.queue = queue
        self.concurrency = concurrency
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.log_path = Path(f"/tmp/crm-test-worker-{queue}.log")

    def start(self) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "crm.settings.test",
            "DATABASE_URL": subprocess_database_url(),
            "CRM_TASK_QUEUE": self.queue,
            **self.extra_env,
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "crm",
                "worker",
                "-Q",
                self.queue,
                "-c",
                str(self.concurrency),
                "--pool",
                "prefork",
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and "ready." in self.log_path.read_text():
                return
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"worker died at start:\n{self.log_path.read_text()}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_path.read_text()}")

    def kill_hard(self) -> None:
        """``kill -9`` the main process and its children (the whole process group)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_hard()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


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
