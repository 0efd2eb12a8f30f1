"""gunicorn.conf.py, the web tier's settings, as gunicorn itself resolves them."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import multiprocess
from prometheus_client.registry import CollectorRegistry

from crm.web_worker import KeepAliveThreadWorker
from tests.worker import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "gunicorn.conf.py"


def _resolved(**env: str) -> dict[str, str]:
    """``gunicorn --print-config crm.wsgi`` run from the repository, as the image runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--print-config", "crm.wsgi"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": subprocess_database_url(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    settings = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition("=")
        settings[name.strip()] = value.strip()
    return settings


def test_gunicorn_reads_the_web_tiers_settings_from_the_repository():
    settings = _resolved()
    assert settings["worker_class"] == "crm.web_worker.KeepAliveThreadWorker"
    assert (settings["workers"], settings["threads"], settings["keepalive"]) == ("4", "4", "5")
    assert settings["bind"] == "['0.0.0.0:8000']"
    assert settings["accesslog"] == "-"


def test_the_deployment_sets_processes_threads_and_access_log_from_the_environment():
    settings = _resolved(WEB_CONCURRENCY="3", GUNICORN_THREADS="8", GUNICORN_ACCESS_LOG="")
    assert (settings["workers"], settings["threads"]) == ("3", "8")
    assert settings["accesslog"] == "None"


def test_the_configured_worker_class_is_the_one_in_crm_web_worker():
    path = runpy.run_path(str(CONF))["worker_class"]
    module, _, name = path.rpartition(".")
    assert (module, name) == (KeepAliveThreadWorker.__module__, KeepAliveThreadWorker.__name__)


def test_a_start_empties_the_metrics_folder_and_a_dead_worker_leaves_no_live_gauge(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    stale = tmp_path / "histogram_4242.db"
    stale.write_bytes(b"left by the pod's last run")
    conf = runpy.run_path(str(CONF))
    conf["on_starting"](server=None)
    assert list(tmp_path.iterdir()) == []

    # A worker writes a live gauge and a counter, and dies; gunicorn calls child_exit: a
    # scrape no longer counts the gauge (the counter's samples stay: they happened).
    worker = subprocess.run(
        [sys.executable, "-c", WORKER_WRITES_METRICS],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(worker.stdout)
    assert _scrape(tmp_path) == {"crm_test_live": 1.0, "crm_test_done_total": 1.0}
    conf["child_exit"](server=None, worker=SimpleNamespace(pid=pid))
    assert _scrape(tmp_path) == {"crm_test_done_total": 1.0}


WORKER_WRITES_METRICS = """
import os
from prometheus_client import Counter, Gauge
Gauge("crm_test_live", "a live gauge", multiprocess_mode="livesum").set(1)
Counter("crm_test_done", "a counter").inc()
print(os.getpid())
"""


def _scrape(folder: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return {
        sample.name: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name in ("crm_test_live", "crm_test_done_total")
    }
