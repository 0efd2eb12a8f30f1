"""Import progress for ``/metrics`` (registered in ``BackfillConfig.ready``): the running
runs and their rows done and total, from the live progress the import task keeps in the
cache (``runs.progress_key``; the run row is written only when a phase commits)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.core.cache import cache
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import ImportRun, RunStatus
from .runs import progress_key

RUNNING = (RunStatus.STAGING, RunStatus.LOADING)


def import_metrics(*, now: datetime) -> Iterator[Metric]:
    runs = list(
        ImportRun.objects.filter(status__in=RUNNING)
        .select_related("tenant")
        .order_by("created_at")
        .values_list("pk", "tenant__slug", "started_at")
    )
    progress = cache.get_many([progress_key(pk) for pk, _, _ in runs])
    labels = ["run", "tenant", "phase"]
    done = GaugeMetricFamily(
        "crm_import_rows_done", "Rows a running import has done.", labels=labels
    )
    total = GaugeMetricFamily(
        "crm_import_rows_total",
        "Rows of the running import's phase (absent while counting).",
        labels=labels,
    )
    running = GaugeMetricFamily(
        "crm_import_running_seconds",
        "How long each running import has run.",
        labels=["run", "tenant"],
    )
    for pk, tenant, started_at in runs:
        state = progress.get(progress_key(pk)) or {}
        key = [str(pk), tenant, str(state.get("phase", "starting"))]
        done.add_metric(key, state.get("done") or 0)
        if state.get("total") is not None:
            total.add_metric(key, state["total"])
        if started_at is not None:
            running.add_metric([str(pk), tenant], max(0.0, (now - started_at).total_seconds()))
    yield GaugeMetricFamily("crm_imports_running", "Imports staging or loading.", value=len(runs))
    yield done
    yield total
    yield running
