"""The load test: the platform's real traffic, mixed, against gunicorn and a Celery worker.

    python -m benchmarks.loadtest [--profiles N] [--users U] [--duration 3m]   (make loadtest)

On the bench database (``--database``, generated members of the ``bench`` tenant, the same
data as the other suites), it prepares what the traffic needs (an API key, a staff login,
sent campaign messages, a sample of identifiers and profiles), starts gunicorn (4 workers)
and a real Celery worker on a private queue, and runs the locust scenario of
``benchmarks/load/locustfile.py`` headless: events in batches, resolves, timeline reads,
the Messaging service's signed webhook callbacks and staff admin pages in a logged-in
session. Statistics are reset once every user has started, so the figures are the
sustained mix. After the load stops it waits for the worker to process every posted
event. The figures (throughput and p99 by operation, errors, event drain) go into
``docs/benchmarks.json`` under ``loadtest`` and ``docs/benchmarks.md``; a run with any
failed request or event is reported as such and exits non-zero.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .harness import BENCH_DATABASE, ROOT, Server, bench_setup, run_meta, start_worker

LOCUSTFILE = ROOT / "benchmarks" / "load" / "locustfile.py"
RUN_DIR = ROOT / "var" / "loadtest"
WEBHOOK_MESSAGES = 20_000
SAMPLE = 20_000


def _sample_profiles(tenant, size: int) -> list[str]:
    from django.db import connection

    from customers.models import CustomerProfile

    table = CustomerProfile._meta.db_table
    # TABLESAMPLE keeps the pick cheap on a million rows; on a small table (the smoke test's
    # thousand) its 5% of the pages can come back short or empty, so a plain scan tops it up.
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id FROM "{table}" TABLESAMPLE SYSTEM (5) '  # noqa: S608
            "WHERE tenant_id = %s AND merged_into_id IS NULL LIMIT %s",
            [tenant.pk, size],
        )
        ids = [str(row[0]) for row in cursor.fetchall()]
        if len(ids) < size:
            cursor.execute(
                f'SELECT id FROM "{table}" WHERE tenant_id = %s '  # noqa: S608
                "AND merged_into_id IS NULL AND NOT (id = ANY(%s::uuid[])) LIMIT %s",
                [tenant.pk, ids, size - len(ids)],
            )
            ids += [str(row[0]) for row in cursor.fetchall()]
        return ids


def _sent_messages(tenant, profile_ids: list[str], now: datetime) -> list[str]:
    """A completed email campaign run with a SENT message to each of ``profile_ids``; the
    ids the Messaging service names them by (``crm-<pk>-<mac>``)."""
    from django.db import connection

    from marketing.common import message_identity
    from marketing.models import (
        Campaign,
        CampaignRun,
        CampaignStatus,
        Message,
        MessageStatus,
        MessageTemplate,
        RunStatus,
    )

    template, _ = MessageTemplate.objects.get_or_create(
        tenant=tenant,
        name="Load test",
        defaults={"channel": "email", "subject": "Hello", "text_body": "Hello {{ first_name }}"},
    )
    campaign = Campaign.objects.filter(tenant=tenant, name="Load test").first()
    if campaign is None:
        campaign = Campaign.objects.create(
            tenant=tenant,
            name="Load test",
            channels=["email"],
            email_template=template,
            status=CampaignStatus.COMPLETED,
        )
    run, _ = CampaignRun.objects.get_or_create(
        tenant=tenant,
        campaign=campaign,
        scheduled_for=datetime(2026, 1, 1, tzinfo=UTC),
        defaults={"status": RunStatus.COMPLETED, "targeted": len(profile_ids)},
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO "{Message._meta.db_table}"
                (tenant_id, run_id, campaign_id, template_id, customer_id, channel, address,
                 variant, status, skip_reason, attempts, error, provider_id, sent_at,
                 created_at, updated_at)
            SELECT %s, %s, %s, %s, p.id, 'email', p.email, '', %s, '', 1, '', '', %s, %s, %s
            FROM unnest(%s::uuid[]) AS ids(id)
            JOIN "customers_customerprofile" p ON p.id = ids.id
            ON CONFLICT DO NOTHING
            """,  # noqa: S608
            [
                tenant.pk,
                run.pk,
                campaign.pk,
                template.pk,
                MessageStatus.SENT,
                now - timedelta(days=1),
                now - timedelta(days=1),
                now - timedelta(days=1),
                profile_ids,
            ],
        )
    rows = Message.objects.filter(run=run).only("id", "tenant_id")[:WEBHOOK_MESSAGES]
    return [message_identity(message) for message in rows]


def prepare(*, profiles: int, webhook_secret: str, log) -> dict:
    """The bench tenant at ``profiles`` members and what the locust users need."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from crm.models import Region
    from crm.services import api_key_create, staff_user_create, tenant_create

    from .events import _known
    from .identity import _ensure_profiles

    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE customers_customerprofile, customers_identityalias, "
            "customers_synclogentry, customers_activity, marketing_message"
        )
    now = timezone.now()
    profile_ids = _sample_profiles(tenant, SAMPLE)
    log(f"{len(profile_ids):,} profiles sampled")
    message_ids = _sent_messages(tenant, profile_ids[:WEBHOOK_MESSAGES], now)
    log(f"{len(message_ids):,} sent messages for webhook callbacks")
    known = _known(tenant, SAMPLE)
    staff_password = secrets.token_urlsafe(16)
    get_user_model().objects.filter(username="loadtest-staff").delete()
    staff_user_create(tenant=tenant, username="loadtest-staff", password=staff_password)
    return {
        "profiles": total,
        "tenant": tenant.slug,
        "api_key": api_key_create(tenant=tenant, name=f"load test {now:%Y-%m-%d %H:%M}").raw_key,
        "known": known,
        "profile_ids": profile_ids,
        "message_ids": message_ids,
        "webhook_secret": webhook_secret,
        "staff": {"username": "loadtest-staff", "password": staff_password},
        "run": uuid.uuid4().hex[:10],
    }


def _locust(*, host: str, users: int, spawn_rate: float, duration: str, fixture: Path) -> Path:
    """Runs the scenario headless; returns the stats CSV."""
    prefix = RUN_DIR / "locust"
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        duration,
        "--reset-stats",
        "--only-summary",
        "--csv",
        str(prefix),
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "LOADTEST_FIXTURE": str(fixture)}
    # Locust exits 1 when a request failed; the figures say which, so read them anyway.
    subprocess.run(command, cwd=ROOT, env=env, check=False)
    return prefix.with_name("locust_stats.csv")


def _read_stats(path: Path, seconds: float) -> dict:
    operations: dict[str, dict] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            name = row["Name"]
            operations["total" if name == "Aggregated" else name] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "requests_per_s": round(float(row["Requests/s"]), 1),
                "median_ms": float(row["50%"]),
                "p99_ms": float(row["99%"]),
                "max_ms": round(float(row["Max Response Time"]), 1),
            }
    operations["total"]["seconds"] = round(seconds, 1)
    return operations


def _drain(tenant_slug: str, since: datetime, timeout: float, log) -> dict:
    """Waits for the worker to process every event the load test posted."""
    from customers.models import SyncLogEntry, SyncStatus

    def counts() -> dict[str, int]:
        rows = SyncLogEntry.objects.filter(tenant__slug=tenant_slug, created_at__gte=since)
        return {
            "events": rows.count(),
            "pending": rows.exclude(status__in=[SyncStatus.PROCESSED, SyncStatus.FAILED]).count(),
            "failed": rows.filter(status=SyncStatus.FAILED).count(),
        }

    started = time.monotonic()
    state = counts()
    while state["pending"] and time.monotonic() - started < timeout:
        time.sleep(1)
        state = counts()
    state["drain_after_load_s"] = round(time.monotonic() - started, 1)
    log(f"events: {state}")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=int(os.environ.get("LOADTEST_USERS", 24)))
    parser.add_argument("--spawn-rate", type=float, default=24)
    parser.add_argument("--duration", default=os.environ.get("LOADTEST_DURATION", "3m"))
    parser.add_argument("--database", default=BENCH_DATABASE, help="bench database name")
    parser.add_argument("--output-dir", default=str(ROOT / "docs"))
    parser.add_argument("--no-record", action="store_true", help="print, do not write docs")
    parser.add_argument(
        "--fresh", action="store_true", help="drop the bench database first (smoke runs)"
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="generate the data, run no load"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is not set: run through `make loadtest`.", file=sys.stderr)
        return 2

    env = bench_setup(args.database, args.fresh)
    # The admin pages need the collected static files (the manifest storage, as deployed).
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    from django.db import connection
    from django.utils import timezone

    from . import report

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    webhook_secret = secrets.token_hex(24)
    fixture_data = prepare(profiles=args.profiles, webhook_secret=webhook_secret, log=log)
    if args.prepare_only:
        return 0
    fixture = RUN_DIR / "fixture.json"
    fixture.write_text(json.dumps(fixture_data))
    fixture.chmod(0o600)
    connection.close()

    queue = f"loadtest-{uuid.uuid4().hex[:8]}"
    server = Server(
        env,
        workers=4,
        extra={"CRM_TASK_QUEUE": queue, "MESSAGING_WEBHOOK_SECRET": webhook_secret},
    )
    worker = start_worker(env, queue, concurrency=2)
    try:
        server.wait()
        worker.wait_ready()
        since = timezone.now()
        log(f"locust: {args.users} users for {args.duration} against 127.0.0.1:{server.port}")
        started = time.monotonic()
        stats = _locust(
            host=f"http://127.0.0.1:{server.port}",
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration=args.duration,
            fixture=fixture,
        )
        seconds = time.monotonic() - started
        events = _drain(fixture_data["tenant"], since, timeout=900, log=log)
    finally:
        worker.stop()
        server.stop()
    operations = _read_stats(stats, seconds)
    for name, row in operations.items():
        log(f"{name}: {row}")
    results = {
        "data": {"profiles": fixture_data["profiles"]},
        "setup": {
            "users": args.users,
            "duration": args.duration,
            "gunicorn_workers": 4,
            "celery_concurrency": 2,
        },
        "operations": operations,
        "events": events,
    }
    clean = operations["total"]["failures"] == 0 and events["failed"] == 0 and not events["pending"]
    if not args.no_record:
        log(f"wrote {report.write(Path(args.output_dir), 'loadtest', results, run_meta())}")
    if not clean:
        log("the load test had errors: see the figures above")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
