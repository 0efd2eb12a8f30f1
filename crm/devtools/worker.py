"""A real Celery worker in a subprocess, for the tests and the benchmarks.

The worker listens on one queue of its own (``CRM_TASK_QUEUE``), so a developer's
``make run`` worker on the same Redis never takes its tasks, and it runs in a session of its
own, so stopping or killing it takes its pool children too. The caller gives the environment
(settings module, database URL); this module only starts, waits for and stops the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class CeleryWorker:
    """``celery -A crm worker`` (prefork) on ``queue``; its output goes to ``log_path``."""

    def __init__(
        self,
        queue: str,
        *,
        env: Mapping[str, str],
        concurrency: int = 2,
        log_path: Path | None = None,
    ) -> None:
        self.queue = queue
        self.concurrency = concurrency
        self.env = {**env, "CRM_TASK_QUEUE": queue}
        self.log_path = log_path or Path(f"/tmp/crm-worker-{queue}.log")  # noqa: S108
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True, timeout: float = 60) -> None:
        """Starts the process; with ``wait``, returns once the worker says it is ready."""
        with self.log_path.open("w") as log:
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
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Waits for Celery's "ready." line; raises with the log if the worker died or is late."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log():
                return
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker died at start:\n{self.log()}")
            time.sleep(0.2)
        raise TimeoutError(f"the Celery worker was not ready after {timeout}s:\n{self.log()}")

    def kill_hard(self) -> None:
        """``kill -9`` the main process and its children (the whole process group)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM to the group); ``kill -9`` if it takes over 30 s."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_hard()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
