"""A real Celery worker runs an import; ``kill -9`` while it loads, a new worker finishes
the same run, and the tenant ends exactly as after an uninterrupted import."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from backfill.mca import Export
from backfill.models import ImportRun, RunStatus
from backfill.runs import progress_key, run_start
from backfill.tasks import import_run
from benchmarks.backfill_duplicates import labelled_export
from customers.models import CustomerProfile
from tests.worker import WorkerProcess, celery_worker

from .helpers import EXPORTED_AT, do_import, region_tenant
from .test_import import _state

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait(predicate, timeout: float, what: str, worker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log()[-3000:]}")


def test_kill_9_while_loading_then_a_new_worker_ends_as_an_uninterrupted_run(tmp_path):
    labelled_export(tmp_path, people=12_000, duplicates=1_200, seed=5)
    tenant = region_tenant("UK")
    export = Export(tmp_path)
    run = run_start(tenant=tenant, export=export, region="UK", exported_at=EXPORTED_AT)
    export.close()

    def phase():
        return (cache.get(progress_key(run.pk)) or {}).get("phase")

    with celery_worker(concurrency=1) as worker:
        import_run.delay(str(tenant.pk), run_id=str(run.pk), path=str(tmp_path))
        _wait(lambda: phase() == "loading", 180, "the load to start", worker)
        worker.kill_hard()
        time.sleep(1)  # PostgreSQL ends the dead worker's session and rolls it back
        run.refresh_from_db()
        assert run.status != RunStatus.COMPLETED
        assert CustomerProfile.objects.for_tenant(tenant).count() == 0

        restarted = WorkerProcess(worker.queue)
        restarted.start()
        try:
            # The broker gives the unacked message back after its visibility timeout; the
            # operator (or that redelivery) sends the same run again.
            import_run.delay(str(tenant.pk), run_id=str(run.pk), path=str(tmp_path))
            _wait(
                lambda: ImportRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
                240, "the resumed run", restarted,
            )  # fmt: skip
        finally:
            restarted.stop()

    reference = region_tenant("UK", slug="bf-reference")
    expected = do_import(reference, "UK", path=tmp_path)
    run.refresh_from_db()
    assert run.counters == expected.counters
    assert _state(tenant) == _state(reference)
    assert ImportRun.objects.for_tenant(tenant).count() == 1
