"""The benchmark harness's CPU meter (the figures' "CPU per event / request" columns)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection

from benchmarks.harness import ProcessCpu, process_and_children, reference_work
from benchmarks.identity import ladder_sizes, ladder_tenant

BUSY = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def _busy(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=seconds)])


def test_a_process_counts_only_what_it_used_after_the_meter_started():
    busy = _busy(0.6)
    try:
        time.sleep(0.05)
        while _cpu(busy.pid) < 0.25:  # a quarter of a second used before the meter
            time.sleep(0.01)
        meter = ProcessCpu({"busy": lambda: [busy.pid] if busy.poll() is None else []})
        before = meter.first[("busy", busy.pid)]
        while _cpu(busy.pid) < before + 0.2:
            time.sleep(0.01)
        used = meter.used()
    finally:
        busy.kill()
        busy.wait()
    assert before >= 0.25
    assert 0.2 <= used["busy"] < 0.6


def test_a_process_started_after_the_meter_counts_from_zero_and_a_gone_one_keeps_its_reading():
    pids: list[int] = []
    meter = ProcessCpu({"group": lambda: pids})
    assert meter.used() == {"group": 0.0}
    busy = _busy(0.5)
    pids.append(busy.pid)
    while _cpu(busy.pid) < 0.15:
        time.sleep(0.01)
    meter.read()  # its first reading: all it used counts (it started after the meter)
    busy.wait()  # it used the rest of its 0.5 s and exited, unread: that part is missed
    used = meter.used()
    assert 0.15 <= used["group"] < 0.45
    assert used["group"] == meter.last[("group", busy.pid)]


def test_a_process_and_its_children_are_listed():
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '5'])"]
    )
    try:
        deadline = time.monotonic() + 5
        while len(process_and_children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        listed = process_and_children(parent.pid)
    finally:
        for pid in process_and_children(parent.pid)[1:]:
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert listed[0] == parent.pid
    assert len(listed) == 2


def _cpu(pid: int) -> float:
    from benchmarks.harness import process_cpu_seconds

    return process_cpu_seconds(pid)


@pytest.mark.django_db
def test_the_reference_work_is_timed_on_both_sides_and_leaves_the_connection_as_it_was():
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        jit = cursor.fetchone()[0]
    reference = reference_work()
    assert set(reference) == {"python_ms", "postgres_ms"}
    assert 0 < reference["python_ms"] < 5000
    assert 0 < reference["postgres_ms"] < 5000
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == jit


@pytest.mark.django_db
def test_each_rung_of_a_ladder_has_a_tenant_of_its_own_shared_by_the_suites():
    top = ladder_tenant(1_000_000, 1_000_000)
    assert top.slug == "bench"
    smaller = ladder_tenant(100_000, 1_000_000)
    assert smaller.slug == "bench-100k" and smaller.pk != top.pk
    assert ladder_tenant(100_000, 1_000_000).pk == smaller.pk  # the next suite's rung: the same
    assert ladder_tenant(300_000, 1_000_000).slug == "bench-300k"
    # A run whose full size is 300k measures it on the main tenant.
    assert ladder_tenant(300_000, 300_000).pk == top.pk


def test_a_ladder_measures_the_smaller_sizes_first_and_the_full_size_last():
    assert ladder_sizes(1_000_000, ladder=True) == [100_000, 300_000, 1_000_000]
    assert ladder_sizes(250_000, ladder=True) == [100_000, 250_000]
    assert ladder_sizes(1_000_000, ladder=False) == [1_000_000]


def test_an_import_process_reports_its_own_peak_memory_not_its_parents():
    """The backfill suite starts each import from the benchmark process, whose size fork and
    exec pass on to ``ru_maxrss``: the import's figure must be its own."""
    script = (
        "import resource; from benchmarks.backfill import _own_peak_kib; "
        "print(_own_peak_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    ballast = bytearray(200 * 1024 * 1024)  # resident: every page written
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    del ballast
    own_kib, inherited_kib = map(int, out.split())
    assert inherited_kib > 200 * 1024  # what the figure used to be: the parent's size
    assert 0 < own_kib < 150 * 1024
