"""The benchmark suite runs end to end (tiny data, few iterations) and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The benchmarks are measured straight against PostgreSQL: `make test-pgbouncer` leaves them out.
pytestmark = pytest.mark.unpooled


@pytest.mark.worker
def test_bench_runs_end_to_end_and_writes_the_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--profiles",
            "2000",
            "--quick",
            "--output-dir",
            str(tmp_path),
            "--database",
            "crm_bench_smoke",
            "--fresh",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # A guard against a hang, not a figure: about 5 minutes on an idle machine, twice
        # that beside the other test workers and other work on the 2 cores.
        timeout=1500,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    raw = json.loads((tmp_path / "benchmarks.json").read_text())
    reference = raw["identity"]["meta"]["reference"]
    assert reference["python_ms"] > 0 and reference["postgres_ms"] > 0
    identity = raw["identity"]["results"]
    assert identity["data"]["profiles"] >= 2000
    assert identity["resolve_existing_by_email"]["queries_per_call"] == 1
    assert identity["http_8_clients"]["errors"] == 0
    assert identity["http_8_clients"]["requests"] > 0
    assert [rung["profiles"] for rung in identity["growth"]] == [identity["data"]["profiles"]]
    events = raw["events"]["results"]
    assert events["end_to_end"]["events"] == events["data"]["events_end_to_end"]
    assert events["end_to_end"]["http_errors"] == 0
    assert events["worker"]["events"] == events["data"]["events_worker"]
    assert events["worker"]["processes"] == 2
    assert events["worker"]["cpu_us_per_event"]["worker"] > 0
    assert events["checks"]["worker_events_per_s"] == events["worker"]["events_per_s"]["median"]
    assert events["worker_in_process"]["events"] > 0
    assert events["timeline"]["activities"] >= 10_000
    assert events["timeline"]["first_page"]["errors"] == 0
    segments = raw["segments"]["results"]
    assert segments["first_refresh"]["members"] == segments["preview"]["count"] > 0
    assert segments["one_percent_refresh"]["entered"] > 0
    assert segments["unchanged_refresh"]["entered"] == segments["unchanged_refresh"]["left"] == 0
    campaigns = raw["campaigns"]["results"]
    assert campaigns["snapshot"]["rows"] == campaigns["data"]["recipients"] > 0
    assert campaigns["hand_off"]["messages"] == campaigns["snapshot"]["queued"]
    assert campaigns["hand_off"]["left_queued"] == 0
    journeys = raw["journeys"]["results"]
    assert journeys["ingestion"]["with_journeys"]["events"] > 0
    assert journeys["ingestion"]["enrolled"] > 0
    assert journeys["wait_sweep"]["advanced"] == journeys["wait_sweep"]["enrollments"] > 0
    assert journeys["wait_sweep"]["at_next_step"] == journeys["wait_sweep"]["enrollments"]
    assert journeys["analytics"]["history_rows"] > 0
    assert journeys["analytics"]["entered"] == journeys["analytics"]["history_rows"] // 4
    scoring = raw["scoring"]["results"]
    assert scoring["data"]["activities"] >= 5 * scoring["data"]["profiles"]
    assert scoring["data"]["interactions"] >= scoring["data"]["profiles"]
    assert scoring["nightly"]["scored"] > 0
    assert scoring["backtest"]["churners"] > 0
    assert scoring["backtest"]["auc"] is not None
    # Without --ladder the growth table has the one size that ran.
    assert [rung["profiles"] for rung in scoring["growth"]] == [scoring["data"]["profiles"]]
    report = (tmp_path / "benchmarks.md").read_text()
    assert "## Identity resolution" in report
    assert "HTTP resolve, 8 clients, throughput" in report
    assert "### Growth: per-request cost by data size" in report
    assert "## Event ingestion and the timeline" in report
    assert "## Segments" in report
    assert "## Campaign fan-out" in report
    assert "## Journeys" in report
    assert "Wait sweep, " in report
    assert "## Scoring" in report
    assert "Nightly scoring of every profile" in report
    assert "### Growth: per-profile cost by data size" in report


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_events_worker_alone_is_timed_on_the_real_worker_until_every_batch_is_done():
    """The events suite's worker-alone pass: events already in the sync log, every batch
    queued at once to a real Celery worker (concurrency 2); it returns once no row is
    pending, with every event processed exactly once."""
    from django.db import connection

    from benchmarks import events as bench_events
    from customers.models import Activity, SyncLogEntry, SyncStatus
    from tests.factories import TenantFactory
    from tests.worker import celery_worker

    tenant = TenantFactory()
    known = [("email", "known-member@example.com")]
    ids = bench_events._ingest_quietly(
        tenant, bench_events.make_events(tenant, 1_200, known, seed=7)
    )
    assert SyncLogEntry.objects.filter(pk__in=ids, status=SyncStatus.PENDING).count() == 1_200

    with celery_worker(concurrency=2) as worker:
        result = bench_events._worker_pass(tenant, ids, worker, connection.settings_dict["NAME"])

    assert result["events"] == 1_200
    assert result["batches"] == -(-1_200 // bench_events.BATCH_SIZE)  # queued at once
    assert result["seconds"] > 0
    assert result["cpu_us_per_event"]["worker"] > 0
    assert not SyncLogEntry.objects.filter(pk__in=ids).exclude(status=SyncStatus.PROCESSED)
    assert Activity.objects.filter(tenant=tenant).count() == 1_200
