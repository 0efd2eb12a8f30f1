"""The API's gunicorn worker (crm.web_worker.KeepAliveThreadWorker), run for real on a
WSGI app that answers with its process id: connections opened together are spread over
the workers, and a kept-alive connection's requests are all answered, in order, whether
they come back to back (the thread that answered waits for them) or after a pause (the
connection went back to the main thread's poller)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

APP = """
import os

def application(environ, start_response):
    body = f"{os.getpid()} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "pid_app.py").write_text(APP)
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pid_app",
            "-w",
            "2",
            "-k",
            "crm.web_worker.KeepAliveThreadWorker",
            "--threads",
            "2",
            "--keep-alive",
            "5",
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_both_workers(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[str, str]:
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    pid, answered = response.read().decode().split()
    return pid, answered


def _wait_for_both_workers(port: int) -> None:
    """Until two different workers have answered (both have booted)."""
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while len(seen) < 2:
        assert time.monotonic() < deadline, "gunicorn's two workers did not both answer"
        try:
            conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(4)]
            seen.update(_get(conn, "/up")[0] for conn in conns)
            for conn in conns:
                conn.close()
        except OSError:
            time.sleep(0.2)
        time.sleep(0.2)


def test_connections_opened_together_are_spread_over_the_workers(server):
    for _ in range(5):
        # Given 4 connections opened at once, 2 workers of 2 threads each
        conns = [http.client.HTTPConnection("127.0.0.1", server, timeout=5) for _ in range(4)]
        for conn in conns:
            conn.connect()
        # When each sends a request
        pids = [_get(conn, "/")[0] for conn in conns]
        # Then each worker has two of them
        assert sorted(pids.count(pid) for pid in set(pids)) == [2, 2], pids
        for conn in conns:
            conn.close()
        time.sleep(0.3)  # the workers see them closed


def test_a_kept_alive_connection_is_answered_back_to_back_and_after_a_pause(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    # Back to back: the thread that answered waits for the next request
    answers = [_get(conn, f"/fast/{i}") for i in range(200)]
    assert [path for _, path in answers] == [f"/fast/{i}" for i in range(200)]
    assert len({pid for pid, _ in answers}) == 1  # one connection, one worker
    # After pauses longer than the wait: back through the main thread's poller
    for i in range(3):
        time.sleep(0.05)
        assert _get(conn, f"/slow/{i}") == (answers[0][0], f"/slow/{i}")
    conn.close()
