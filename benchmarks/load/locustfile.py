"""The platform's traffic, mixed, for locust (run by ``python -m benchmarks.loadtest``).

Who calls the CRM, each as a locust user class, weighted by how many of them there are:

* a producer (Tee-time, SCL, POS) posting events in batches of 100;
* platform services resolving identity hints to a customer;
* the member app and staff tools reading a customer's timeline;
* the Messaging service calling back with delivery and engagement events, signed with
  HMAC-SHA256 over ``timestamp.body`` as ``marketing.interactions`` expects;
* club staff in the admin (logged in once, then browsing the dashboard, the customer list
  and customer pages).

The fixture (``LOADTEST_FIXTURE``, written by the runner) holds the API key, identifiers,
profile and message ids, the webhook secret and the staff login. Nothing here imports
Django: locust is a client like any other.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from locust import HttpUser, between, task

FIXTURE = json.loads(Path(os.environ["LOADTEST_FIXTURE"]).read_text())
EVENTS_PER_BATCH = 100
WEBHOOK_EVENTS_PER_CALL = 20
HINT_KEYS = {"email": "email", "phone": "phoneNumber", "scl_member": "sclMemberId"}
RESOLVE_KEYS = {"email": "email", "phone": "phone", "scl_member": "scl_member_id"}
_serial = itertools.count()


def _next_id(prefix: str) -> str:
    """Unique across the locust process and across runs (the fixture's run id)."""
    return f"{prefix}-{FIXTURE['run']}-{os.getpid()}-{next(_serial)}"


def _event(now: datetime) -> dict:
    kind, value = random.choice(FIXTURE["known"])
    if random.random() < 0.2:
        identity = {"email": f"{_next_id('walkin')}@example.com"}
    else:
        identity = {HINT_KEYS[kind]: value}
    type_, payload = random.choice(
        [
            ("teetime.round.completed", {"roundId": _next_id("R"), "holes": 18}),
            (
                "teetime.booking.created",
                {"bookingId": _next_id("B"), "teeTime": (now + timedelta(days=3)).isoformat()},
            ),
            ("teetime.handicap.updated", {"handicapIndex": f"{random.uniform(0, 36):.1f}"}),
            ("pos.purchase.completed", {"sku": "BALLS12", "total": 320}),
        ]
    )
    return {
        "id": _next_id("ev"),
        "type": type_,
        "tenantId": FIXTURE["tenant"],
        "timestamp": (now - timedelta(minutes=random.randrange(600))).isoformat(),
        "identity": identity,
        "payload": payload,
    }


class ApiUser(HttpUser):
    abstract = True
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Api-Key {FIXTURE['api_key']}"


class EventProducer(ApiUser):
    weight = 2

    @task
    def post_batch(self) -> None:
        now = datetime.now(UTC)
        body = {"events": [_event(now) for _ in range(EVENTS_PER_BATCH)]}
        with self.client.post(
            "/api/v1/events", json=body, name="events: POST batch of 100", catch_response=True
        ) as response:
            # Each event is judged on its own: a rejected one is an error of the run too.
            if response.ok and response.json().get("rejected"):
                response.failure(f"rejected: {response.json()['rejected'][:1]}")


class ResolveClient(ApiUser):
    weight = 3

    @task
    def resolve(self) -> None:
        kind, value = random.choice(FIXTURE["known"])
        self.client.post(
            "/api/v1/customers/resolve",
            json={RESOLVE_KEYS[kind]: value},
            name="customers: POST resolve",
        )


class TimelineReader(ApiUser):
    weight = 3

    @task
    def timeline(self) -> None:
        profile = random.choice(FIXTURE["profile_ids"])
        self.client.get(f"/api/v1/customers/{profile}/timeline", name="customers: GET timeline")


class MessagingWebhook(HttpUser):
    weight = 1
    wait_time = between(0.5, 1.5)

    @task
    def callback(self) -> None:
        now = datetime.now(UTC)
        events = [
            {
                "id": _next_id("wh"),
                "type": random.choice(["delivered", "opened", "clicked"]),
                "messageId": random.choice(FIXTURE["message_ids"]),
                "timestamp": now.isoformat(),
            }
            for _ in range(WEBHOOK_EVENTS_PER_CALL)
        ]
        body = json.dumps({"events": events}).encode()
        timestamp = str(int(time.time()))
        digest = hmac.new(
            FIXTURE["webhook_secret"].encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        with self.client.post(
            "/api/v1/webhooks/messaging",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-CRM-Timestamp": timestamp,
                "X-CRM-Signature": f"v1={digest}",
            },
            name="webhooks: POST messaging callback of 20",
            catch_response=True,
        ) as response:
            # A 200 with rejected events is an error too: every event names a sent message.
            if response.status_code == 200 and response.json().get("rejected"):
                response.failure(f"rejected: {response.json()['rejected'][:1]}")


class StaffUser(HttpUser):
    weight = 1
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        login = self.client.get("/admin/login/", name="admin: GET login")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        self.client.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "username": FIXTURE["staff"]["username"],
                "password": FIXTURE["staff"]["password"],
                "next": "/admin/",
            },
            headers={"Referer": f"{self.host}/admin/login/"},
            name="admin: POST login",
        )

    @task(1)
    def dashboard(self) -> None:
        self._page("/admin/", "admin: GET dashboard")

    @task(2)
    def customer_list(self) -> None:
        self._page("/admin/customers/customerprofile/", "admin: GET customer list")

    @task(4)
    def customer_page(self) -> None:
        profile = random.choice(FIXTURE["profile_ids"])
        self._page(
            f"/admin/customers/customerprofile/{profile}/change/", "admin: GET customer page"
        )

    def _page(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, catch_response=True) as response:
            # Logged out, the admin redirects to the login page, which answers 200.
            if "/admin/login/" in response.url:
                response.failure("not logged in")
