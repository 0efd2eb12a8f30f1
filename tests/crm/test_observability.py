"""Structured logs: one JSON object per line with the request id and the tenant; the request
id answered in X-Request-ID and carried into the Celery tasks the request causes."""

from __future__ import annotations

import io
import json
import logging
import re
import time

import pytest

from customers.models import SyncLogEntry, SyncStatus
from tests.events.helpers import at, event
from tests.worker import celery_worker


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


@pytest.mark.django_db
def test_a_request_id_is_taken_from_the_caller_and_answered(api_a):
    response = api_a.get("/api/v1/customers", HTTP_X_REQUEST_ID="checkout-7f3a.1")

    assert response.status_code == 200
    assert response["X-Request-ID"] == "checkout-7f3a.1"


@pytest.mark.django_db
@pytest.mark.parametrize("sent", ["has spaces", "x" * 129, 'a"b', "ü-not-ascii", ""])
def test_an_invalid_or_missing_request_id_is_replaced_by_a_new_one(client, sent):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=sent)

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


@pytest.fixture
def console():
    """What the console handler (the one production logs through) writes."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.django_db
def test_every_line_of_a_request_is_json_with_its_id_and_tenant(api_a, console):
    api_a.get("/api/v1/customers/not-a-uuid", HTTP_X_REQUEST_ID="req-log-1")

    lines = [line for line in _json_lines(console.getvalue()) if line["request_id"]]
    assert lines, "no JSON log line carried the request id"
    access = [line for line in lines if line["logger"] == "crm.request"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-log-1"
    assert access[0]["tenant"] == "links-a"
    # The route is the URL pattern, never the raw path (ids would explode log and metrics).
    assert access[0]["route"].startswith("api/v1/customers/")
    assert "not-a-uuid" not in access[0]["route"]
    assert access[0]["status"] == 404
    assert {"time", "level", "message", "duration_ms"} <= set(access[0])
    # Django's own "Not Found" line for the same request carries the id too.
    assert {line["request_id"] for line in lines} == {"req-log-1"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_request_id_reaches_the_task_logs(api_a, tenant_a):
    body = event(tenant_a, "teetime.booking.created", {"email": "a@example.com"},
                 {"bookingId": "B1", "teeTime": at(-2)}, id="bk-log-1")  # fmt: skip
    with celery_worker() as worker:
        response = api_a.post("/api/v1/events", body, format="json", HTTP_X_REQUEST_ID="req-42")
        assert response.status_code == 202
        assert response["X-Request-ID"] == "req-42"
        deadline = time.monotonic() + 30
        lines: list[dict] = []
        while time.monotonic() < deadline:
            lines = [
                line
                for line in _json_lines(worker.log())
                if "customers.process_events" in line.get("message", "")
                and "succeeded" in line.get("message", "")
            ]
            if lines:
                break
            time.sleep(0.2)

    assert SyncLogEntry.objects.get(tenant=tenant_a).status == SyncStatus.PROCESSED
    assert lines, worker.log()
    # The line the worker wrote when the request's task finished carries the request's id
    # and the task's tenant.
    assert lines[0]["request_id"] == "req-42"
    assert lines[0]["tenant"] == "links-a"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_nobody_requested_logs_its_own_task_id(tenant_a):
    from crm.tasks import tenant_ping

    with celery_worker() as worker:
        result = tenant_ping.apply_async(args=[str(tenant_a.pk)], kwargs={"marker": "m"})
        deadline = time.monotonic() + 30
        lines: list[dict] = []
        while time.monotonic() < deadline and not lines:
            lines = [
                line
                for line in _json_lines(worker.log())
                if "crm.tenant_ping" in line.get("message", "")
                and "succeeded" in line.get("message", "")
            ]
            time.sleep(0.2)

    assert lines, worker.log()
    assert lines[0]["request_id"] == result.id
