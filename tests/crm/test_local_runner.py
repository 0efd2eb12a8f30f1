"""`make run` on a machine with no DATABASE_URL / REDIS_URL: the runner starts an embedded
PostgreSQL and Redis, migrates, prints a staff login that works, serves the admin, runs a
worker and beat, and Ctrl-C stops everything. A second run reuses the data."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
LOGIN = re.compile(r"user=(\S+)\s+password=(\S+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Runner:
    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.log_path = data_dir.parent / f"runner-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crm.local",
                "--data-dir",
                str(data_dir),
                "run",
                "--bind",
                f"127.0.0.1:{self.port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            assert self.process.poll() is None, self.log()
            time.sleep(0.3)
        raise AssertionError(f"{pattern!r} not seen:\n{self.log()}")

    def wait_http(self, path: str, timeout: float = 120) -> requests.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return requests.get(self.url + path, timeout=5)
            except requests.ConnectionError:
                time.sleep(0.3)
        raise AssertionError(f"{path} never answered:\n{self.log()}")

    def interrupt(self) -> int:
        """What Ctrl-C does: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=90)


def _login(runner: Runner, username: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{runner.url}/admin/login/", timeout=10)
    response = session.post(
        f"{runner.url}/admin/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": f"{runner.url}/admin/login/"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.url == f"{runner.url}/admin/"
    return session


def _processes_using(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if str(data_dir) in line]


@pytest.mark.worker
@pytest.mark.unpooled  # an embedded PostgreSQL: nothing here goes through PgBouncer
def test_make_run_serves_the_admin_on_embedded_servers_and_stops_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "var"
    runner = Runner(data_dir)
    try:
        username, password = runner.wait_for(LOGIN.pattern).groups()
        runner.wait_for(r"celery@\S+ ready")
        assert runner.wait_http("/admin/login/").status_code == 200
        assert "Starting embedded PostgreSQL" in runner.log()
        assert "Starting embedded Redis" in runner.log()
        session = _login(runner, username, password)
        clubs = session.get(f"{runner.url}/admin/crm/club/")
        assert "Demo Country Club" in clubs.text
        # The demo club looks alive without a manual step: segments and a sent campaign.
        segments = session.get(f"{runner.url}/admin/marketing/segment/")
        assert "Active members" in segments.text
        campaigns = session.get(f"{runner.url}/admin/marketing/campaign/")
        assert "Autumn Open: entries now open" in campaigns.text
        assert "Completed" in campaigns.text
        ready = requests.get(f"{runner.url}/readyz", timeout=10).json()
        assert ready["status"] == "ok"
        assert ready["checks"] == {"database": "ok", "broker": "ok", "cache": "ok"}
    finally:
        exit_code = runner.interrupt()
    assert exit_code == 0, runner.log()
    time.sleep(1)
    assert _processes_using(data_dir) == []

    # A second run reuses the data: same login, no new tenant.
    again = Runner(data_dir)
    try:
        assert again.wait_for(LOGIN.pattern).groups() == (username, password)
        again.wait_http("/admin/login/")
        _login(again, username, password)
    finally:
        assert again.interrupt() == 0, again.log()
