"""`make loadtest` runs end to end (tiny data, a few seconds) with no error, and reports
every operation of the mix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The load test is measured straight against PostgreSQL: `make test-pgbouncer` leaves it out.
pytestmark = pytest.mark.unpooled
OPERATIONS = {
    "events: POST batch of 100",
    "customers: POST resolve",
    "customers: GET timeline",
    "webhooks: POST messaging callback of 20",
    "admin: POST login",  # then the dashboard it redirects to, in the same request
}
ADMIN_PAGES = {"admin: GET dashboard", "admin: GET customer list", "admin: GET customer page"}


@pytest.mark.worker
def test_loadtest_runs_the_mix_without_errors_and_writes_the_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.loadtest",
            "--profiles",
            "1000",
            "--users",
            "10",
            "--duration",
            "30s",
            "--output-dir",
            str(tmp_path),
            "--database",
            "crm_bench_smoke_load",
            "--fresh",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    results = json.loads((tmp_path / "benchmarks.json").read_text())["loadtest"]["results"]
    operations = results["operations"]
    assert set(operations) >= OPERATIONS, result.stdout[-5000:] + result.stderr[-5000:]
    assert operations["total"]["failures"] == 0
    assert all(operations[name]["requests"] > 0 for name in OPERATIONS)
    # The staff user's page views after logging in (which of them is up to chance).
    assert sum(operations.get(name, {}).get("requests", 0) for name in ADMIN_PAGES) > 0
    events = results["events"]
    assert events["events"] > 0
    assert events["failed"] == events["pending"] == 0
    assert "## Load test" in (tmp_path / "benchmarks.md").read_text()
