"""/metrics: refused without the token; serves every named series, with values that follow
what is in the database and the broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
import yaml
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from automation.models import Enrollment
from backfill.models import ImportRun, RunStatus
from backfill.runs import progress_key
from crm.metrics import sends_record
from crm.tasks import beat_heartbeat, tenant_ping
from tests.automation.helpers import customer, enroll, journey, send_end, template
from tests.events.helpers import event, ingest
from tests.worker import subprocess_database_url

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dev-metrics-token"  # the development default of METRICS_TOKEN (crm.settings.base)

SERIES = {
    "crm_http_request_duration_seconds",
    "crm_celery_queue_length",
    "crm_celery_queue_oldest_age_seconds",
    "crm_celery_unacked_messages",
    "crm_events_pending",
    "crm_events_oldest_pending_age_seconds",
    "crm_sends",
    "crm_journey_due_enrollments",
    "crm_journey_sweep_lag_seconds",
    "crm_imports_running",
    "crm_import_rows_done",
    "crm_import_rows_total",
    "crm_metrics_source_up",
    "crm_beat_heartbeat_age_seconds",
}


def _scrape(client) -> dict[str, list]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family.samples for family in families}


def _value(samples, name: str, **labels) -> float:
    matches = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(matches) == 1, (name, labels, samples)
    return matches[0]


def test_metrics_refuses_without_the_token(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"crm_" not in response.content


@pytest.mark.parametrize("header", ["Bearer wrong-token", "Bearer dev-metrics-tokenX", "Basic x"])
def test_metrics_refuses_another_token(client, header):
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code in (401, 403)
    assert b"crm_" not in response.content


def test_metrics_serves_every_named_series(client, api_a, tenant_a):
    now = timezone.now()
    api_a.get("/api/v1/customers")  # a request to time
    # Three events received and not processed, the oldest ten minutes ago.
    with time_machine.travel(now - timedelta(minutes=10), tick=False):
        ingest(tenant_a, event(tenant_a, "scl.member.created", {"email": "a@example.com"}))
    ingest(
        tenant_a,
        event(tenant_a, "scl.member.created", {"email": "b@example.com"}),
        event(tenant_a, "scl.member.created", {"email": "c@example.com"}),
    )
    # A task waiting on the scoring queue for two minutes (no worker runs here).
    with time_machine.travel(now - timedelta(minutes=2), tick=False):
        tenant_ping.apply_async(args=[str(tenant_a.pk)], kwargs={"marker": "m"}, queue="scoring")
    with time_machine.travel(now - timedelta(seconds=90), tick=False):
        beat_heartbeat()
    sends_record(outcome="sent", count=5)
    sends_record(outcome="failed")
    # An enrollment due five minutes ago that the sweep has not advanced.
    welcome = journey(tenant_a, send_end(template(tenant_a)), name="Welcome")
    enroll(welcome, customer(tenant_a))
    Enrollment.objects.filter(journey=welcome).update(due_at=now - timedelta(minutes=5))
    # An import loading row 1,200 of 5,000.
    run = ImportRun.objects.create(
        tenant=tenant_a, region="ZA", source="mca.zip", fingerprint="f", exported_at=now,
        status=RunStatus.LOADING, started_at=now - timedelta(minutes=3),
    )  # fmt: skip
    cache.set(progress_key(run.pk), {"phase": "loading", "done": 1200, "total": 5000})

    with time_machine.travel(now, tick=False):
        metrics = _scrape(client)

    assert set(metrics) >= SERIES, SERIES - set(metrics)
    latency = metrics["crm_http_request_duration_seconds"]
    routes = {s.labels["route"] for s in latency if s.name.endswith("_count")}
    assert "api/v1/customers" in "".join(routes)
    assert not any("?" in r and "=" in r for r in routes)  # patterns, not raw paths
    assert (
        _value(metrics["crm_celery_queue_length"], "crm_celery_queue_length", queue="scoring") == 1
    )
    assert _value(metrics["crm_celery_queue_length"], "crm_celery_queue_length", queue="sends") == 0
    age = _value(
        metrics["crm_celery_queue_oldest_age_seconds"],
        "crm_celery_queue_oldest_age_seconds",
        queue="scoring",
    )
    assert 110 <= age <= 130
    assert _value(metrics["crm_events_pending"], "crm_events_pending") == 3
    lag = _value(
        metrics["crm_events_oldest_pending_age_seconds"], "crm_events_oldest_pending_age_seconds"
    )
    assert 590 <= lag <= 610
    assert _value(metrics["crm_sends"], "crm_sends_total", outcome="sent") == 5
    assert _value(metrics["crm_sends"], "crm_sends_total", outcome="failed") == 1
    assert _value(metrics["crm_journey_due_enrollments"], "crm_journey_due_enrollments") == 1
    sweep = _value(metrics["crm_journey_sweep_lag_seconds"], "crm_journey_sweep_lag_seconds")
    assert 290 <= sweep <= 310
    assert _value(metrics["crm_imports_running"], "crm_imports_running") == 1
    assert _value(metrics["crm_import_rows_done"], "crm_import_rows_done", run=str(run.pk)) == 1200
    assert (
        _value(metrics["crm_import_rows_total"], "crm_import_rows_total", tenant="links-a") == 5000
    )
    beat = _value(metrics["crm_beat_heartbeat_age_seconds"], "crm_beat_heartbeat_age_seconds")
    assert 85 <= beat <= 95
    assert {s.labels["source"]: s.value for s in metrics["crm_metrics_source_up"]} == {
        "beat": 1,
        "celery_queues": 1,
        "sends": 1,
        "events": 1,
        "journeys": 1,
        "imports": 1,
    }


def test_the_alert_rules_use_only_series_the_endpoint_serves(client):
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\bcrm_[a-z_]+", rule["expr"])
    }
    served = set(_scrape(client))
    assert used and used <= served, used - served
    assert all(rule.get("for") and rule["labels"]["severity"] in ("warning", "critical")
               for group in rules["groups"] for rule in group["rules"])  # fmt: skip


SCRAPE_TWO_PROCESSES = """
import django, os, sys
django.setup()
from django.test import Client
client = Client()
if sys.argv[1] == "request":
    client.get("/healthz")
else:
    print(client.get("/metrics", HTTP_AUTHORIZATION="Bearer dev-metrics-token").content.decode())
"""


def test_under_gunicorn_any_worker_serves_the_requests_of_all(tmp_path):
    # PROMETHEUS_MULTIPROC_DIR: two processes (two gunicorn workers) answer a request each;
    # a third answers the scrape with both counted.
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "crm.settings.test",
        "DATABASE_URL": subprocess_database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }

    def run(arg: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", SCRAPE_TWO_PROCESSES, arg],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip

    run("request")
    run("request")
    families = {f.name: f for f in text_string_to_metric_families(run("scrape"))}
    counts = [
        s.value
        for s in families["crm_http_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["route"] == "healthz"
    ]
    assert counts == [2.0]
    assert "crm_celery_queue_length" in families
