"""docs/benchmarks.md, rendered from docs/benchmarks.json (every suite's latest results)."""

from __future__ import annotations

import json
from pathlib import Path


def _passes(name: str, value: float, target: float) -> bool:
    return value >= target if name.endswith(("_rps", "_per_s", "_share")) else value <= target


def _identity(results: dict) -> list[str]:
    checks, targets = results["checks"], results["targets"]
    labels = {
        "resolve_existing_median_ms": ("Resolve an existing person, in-process, median", "ms", "≤"),
        "http_single_p99_ms": ("HTTP resolve, 1 client, p99 (median of runs)", "ms", "≤"),
        "http_8_clients_rps": (
            "HTTP resolve, 8 clients, throughput (median of runs)",
            "req/s",
            "≥",
        ),
        "http_8_clients_p99_ms": ("HTTP resolve, 8 clients, p99 (median of runs)", "ms", "≤"),
    }
    data = results["data"]
    lines = [
        "## Identity resolution",
        "",
        f"Data: {data['profiles']:,} profiles, {data['aliases']:,} "
        "identity aliases in one tenant (generated ZA members).",
    ]
    server = results.get("server")
    if server:
        lines += [
            "",
            f"Method: `VACUUM ANALYZE` of the profile and alias tables, a warm-up, then each HTTP "
            f"figure {data['repeats']} times (median, with min, max and spread). Server: "
            f"gunicorn, {server['workers']} `{server['worker_class']}` workers x "
            f"{server['threads']} threads, keep-alive {server['keep_alive_s']} s. The load "
            "runs on the same 2 CPUs as the server, each client with one keep-alive connection "
            "sending its next request when the answer is read: Python client processes and, "
            "back to back in each repetition when it is installed (`make wrk`), "
            "[wrk](https://github.com/wg/wrk) (one C thread, `benchmarks/load/"
            "wrk_requests.lua`), which takes about a tenth of the Python clients' CPU per "
            "request from the server. The targets are read from "
            f"**{results.get('load_generator', 'python')}**'s runs; both are shown, with the "
            "CPU time per request of the server, its PostgreSQL backends and the load clients. "
            f"Load average before and after: {data['load_average'][0]} / "
            f"{data['load_average'][1]} (other work on the machine).",
        ]
    lines += ["", "| figure | measured | target | |", "|---|---|---|---|"]
    for name, (label, unit, sign) in labels.items():
        if name not in checks:
            continue
        ok = _passes(name, checks[name], targets[name])
        lines.append(
            f"| {label} | {checks[name]} {unit} | {sign} {targets[name]} {unit} | "
            f"{'PASS' if ok else 'MISS'} |"
        )
    lines += [
        "",
        "| measurement | n | median ms | p99 ms | mean ms | extra |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("resolve_existing_by_email", "in-process, existing, by email"),
        ("resolve_existing_by_phone", "in-process, existing, by phone"),
        ("resolve_new", "in-process, new person (creates profile + alias)"),
    ):
        row = results[key]
        extra = f"{row['queries_per_call']} query per call" if "queries_per_call" in row else ""
        lines.append(
            f"| {label} | {row['n']} | {row['median_ms']} | {row['p99_ms']} | {row['mean_ms']} "
            f"| {extra} |"
        )
    for key, label in (
        ("http_single_client", "HTTP POST /customers/resolve, 1 Python client"),
        ("http_8_clients", "HTTP POST /customers/resolve, 8 Python clients"),
        ("http_wrk_single_client", "HTTP POST /customers/resolve, wrk, 1 connection"),
        ("http_wrk_8_clients", "HTTP POST /customers/resolve, wrk, 8 connections"),
    ):
        row = results.get(key)
        if row is None:
            continue
        if isinstance(row["requests_per_s"], dict):
            lines.append(
                f"| {label} | {row['requests_per_run']} per run | "
                f"{row['median_ms']['median']} | {_spread(row['p99_ms'])} | | "
                f"{_spread(row['requests_per_s'], ' req/s')}, {row['errors']} errors{_cpu(row)} |"
            )
        else:  # a run from before the repeats
            lines.append(
                f"| {label} | {row['n']} | {row['median_ms']} | {row['p99_ms']} | "
                f"{row['mean_ms']} | {row['requests_per_s']} req/s, {row['errors']} errors |"
            )
    if results.get("cpu_note"):
        lines += ["", f"_{results['cpu_note']}._"]
    if "http_queries_per_request" in results:
        lines += [
            "",
            f"One HTTP resolve of a known person makes {results['http_queries_per_request']} "
            "SQL query (the alias lookup with its profile; the API key comes from the "
            "per-process credential cache, tests/customers/test_hot_paths.py pins it).",
        ]
    lines += _before_after(results)
    lines += _http_profile(results)
    side = results.get("naive_side_by_side")
    if side:
        naive, ours = side["naive"], side["ours"]
        lines += [
            "",
            "### Side by side with the naive resolver (same data, same run)",
            "",
            f"The guide's resolver (one ORM query per hint on the profile's columns, first match "
            f"wins) against ours (all hints in one query, conflicts detected), in-process, for "
            f"{ours['n']:,} existing people given their {side['hints'].split(' of ')[0]}:",
            "",
            "| resolver | median ms | p99 ms | mean ms | queries per call |",
            "|---|---|---|---|---|",
            f"| naive | {naive['median_ms']} | {naive['p99_ms']} | {naive['mean_ms']} | up to "
            f"{naive['queries_per_call_at_most']} |",
            f"| ours | {ours['median_ms']} | {ours['p99_ms']} | {ours['mean_ms']} | 1 |",
            "",
            f"Ratio (naive median / ours): **{side['ratio_median']}x**.",
        ]
    lines += _identity_growth(results.get("growth"))
    return [*lines, ""]


def _identity_growth(growth: list[dict] | None) -> list[str]:
    if not growth:
        return []
    return [
        "",
        "### Growth: per-request cost by data size",
        "",
        '`make bench BENCH_ARGS="--suite identity --ladder"` also measures tenants of 100k and '
        "300k profiles (their own tenants, in the same database), each with its own server "
        "and the same method; a run without `--ladder` has one row. The goal is a flat cost "
        "per resolve.",
        "",
        "| profiles | in-process median ms | in-process p99 ms | HTTP 8 clients req/s "
        "(median) | HTTP 8 clients p99 ms | load generator |",
        "|---|---|---|---|---|---|",
        *(
            f"| {rung['profiles']:,} | {rung['resolve_median_ms']} | {rung['resolve_p99_ms']} "
            f"| {rung['http_8_clients_rps']} | {rung['http_8_clients_p99_ms']} "
            f"| {rung['generator']} |"
            for rung in growth
        ),
    ]


def _before_after(results: dict) -> list[str]:
    """The code before issue 18's HTTP work, run under the bench lock next to a recording of
    this suite (``before_same_lock``, added to the results from that run)."""
    before = results.get("before_same_lock")
    if not before:
        return []
    after_single, after_eight = results["http_single_client"], results["http_8_clients"]
    timeline = before["timeline"]
    return [
        "",
        "### Before and after, same data, under the bench lock",
        "",
        f"Before: {before['code']}; {before['server']}; {before['date']}; load average "
        f"{before['load_average']}. One run each (the old suite had no repeats); after: the "
        "median of the runs above.",
        "",
        "| figure | before | after |",
        "|---|---|---|",
        f"| resolve, 8 clients | {before['http_8_clients']['requests_per_s']} req/s, p99 "
        f"{before['http_8_clients']['p99_ms']} ms | {after_eight['requests_per_s']['median']} "
        f"req/s, p99 {after_eight['p99_ms']['median']} ms |",
        f"| resolve, 1 client | {before['http_single_client']['requests_per_s']} req/s, p99 "
        f"{before['http_single_client']['p99_ms']} ms | "
        f"{after_single['requests_per_s']['median']} req/s, p99 "
        f"{after_single['p99_ms']['median']} ms |",
        f"| timeline first page, 1 client (3 runs, median) | median "
        f"{timeline['first_page']['median_ms']['median']} ms, p99 "
        f"{timeline['first_page']['p99_ms']['median']} ms | see the events section |",
        f"| timeline first page, category filter | median "
        f"{timeline['first_page_commerce']['median_ms']['median']} ms, p99 "
        f"{timeline['first_page_commerce']['p99_ms']['median']} ms | see the events section |",
    ]


def _http_profile(results: dict) -> list[str]:
    after, before = results.get("profile"), results.get("profile_before")
    if not after or not before:
        return []
    lines = [
        "",
        "### Profile of the hot endpoints, before and after",
        "",
        "In-process through Django's test client (`benchmarks/http_profile.py`), per request, on "
        "the same data. Before: " + before["note"],
        "",
        "| endpoint | | SQL queries | function calls | CPU µs | wall µs |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("resolve", "POST resolve"), ("timeline_first_page", "GET timeline")):
        for name, row in (("before", before[key]), ("after", after[key])):
            lines.append(
                f"| {label} | {name} | {row['queries_per_request']} | "
                f"{row['function_calls_per_request']:,} | {row['cpu_us_per_request']:,} | "
                f"{row['wall_us_per_request']:,} |"
            )
    lines += [
        "",
        "Where the time goes after (own time per request under cProfile; waiting on a socket "
        "is PostgreSQL or Redis):",
        "",
        "| endpoint | function | own ms | cumulative ms |",
        "|---|---|---|---|",
    ]
    for key, label in (("resolve", "resolve"), ("timeline_first_page", "timeline")):
        for row in after[key]["top_own_time"][:5]:
            lines.append(
                f"| {label} | `{row['function']}` | {row['own_ms_per_request']} | "
                f"{row['cumulative_ms_per_request']} |"
            )
    return lines


def _checks_table(results: dict, labels: dict) -> list[str]:
    checks, targets = results["checks"], results["targets"]
    lines = ["| figure | measured | target | |", "|---|---|---|---|"]
    for name, (label, unit, sign) in labels.items():
        ok = _passes(name, checks[name], targets[name])
        lines.append(
            f"| {label} | {checks[name]:,} {unit} | {sign} {targets[name]:,} {unit} | "
            f"{'PASS' if ok else 'MISS'} |"
        )
    return lines


def _spread(figure: dict, unit: str = "") -> str:
    return (
        f"**{figure['median']:,}**{unit} (min {figure['min']:,}, max {figure['max']:,}; "
        f"spread {figure['spread_pct']}%)"
    )


def _profile_table(title: str, profile: dict) -> list[str]:
    lines = [
        f"{title}: {profile['events']:,} events in {profile['seconds']} s under cProfile, "
        f"{profile['waiting_for_postgres_pct']}% of it waiting for PostgreSQL.",
        "",
        "| function | calls | own s | cumulative s |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("top_customers_cumulative", "pipeline, by cumulative time"),
        ("top_own_time", "everything, by own time"),
    ):
        lines.append(f"| _{label}_ | | | |")
        for row in profile.get(key, []):
            lines.append(
                f"| `{row['function']}` | {row['calls']:,} | {row['own_s']} | "
                f"{row['cumulative_s']} |"
            )
    return [*lines, ""]


def _cpu(row: dict) -> str:
    """CPU time per request of the server, its PostgreSQL backends and the load clients."""
    cpu = row.get("cpu_us_per_request")
    if not cpu:
        return ""
    parts = [f"server {cpu['server']} µs"]
    if "postgres" in cpu:  # left out of runs measured before the meter followed each backend
        parts.append(f"PostgreSQL {cpu['postgres']} µs")
    parts.append(f"load clients {cpu['clients']} µs")
    busy = (
        f" ({row['cpu_busy_of_2']} of the 2 CPUs busy with them)" if "cpu_busy_of_2" in row else ""
    )
    return f"; CPU per request: {', '.join(parts)}{busy}"


def _timeline_note(timeline: dict) -> list[str]:
    """Where the timeline rows differ from the rest of the events run: their server, and the
    date when they were measured on their own (``python -m benchmarks.timeline``)."""
    notes = []
    server = timeline.get("server")
    if server:
        notes.append(
            f"timeline server: gunicorn, {server['workers']} `{server['worker_class']}` workers "
            f"x {server['threads']} threads, keep-alive {server['keep_alive_s']} s"
        )
    if timeline.get("load_generator") == "wrk":
        notes.append("the target is read from the wrk rows (see the identity section)")
    if timeline.get("cpu_note"):
        notes.append(timeline["cpu_note"])
    recorded = timeline.get("recorded")
    if recorded:
        notes.append(
            f"timeline rows measured on their own on {recorded['date']} "
            f"(`python -m benchmarks.timeline`, load average {recorded['load_average'][0]} / "
            f"{recorded['load_average'][1]}), after the rest of this run"
        )
    return [f"| _{'; '.join(notes)}_ | |"] if notes else []


def _worker_cpu(worker: dict) -> str:
    cpu = worker.get("cpu_us_per_event")
    if not cpu:
        return ""
    exited = cpu.get("postgres_exited")
    return (
        f"; CPU per event (median of runs): worker processes {cpu['worker']} µs, their "
        f"PostgreSQL backends {cpu['postgres']} µs"
        + (
            f" (plus {exited} µs of backends that exited meanwhile, any database's)"
            if exited
            else ""
        )
    )


def _events(results: dict) -> list[str]:
    data, one_process, e2e, timeline, naive = (
        results["data"],
        results["worker_in_process"],
        results["end_to_end"],
        results["timeline"],
        results["naive"],
    )
    # Results recorded before the deployed worker was measured have only the one-process
    # figure, and the check read it.
    deployed = results.get("worker")
    nw, nq = naive["worker_in_process"], naive["one_task_per_event"]
    worker_label = (
        f"Worker alone, as deployed (Celery, {deployed['processes']} processes), median"
        if deployed
        else "Worker alone (one process, in-process), median"
    )
    lines = [
        "## Event ingestion and the timeline",
        "",
        f"Data: {data['profiles']:,} profiles, {data['aliases']:,} aliases; "
        f"{data['events_end_to_end']:,} events end to end and {data['events_worker']:,} "
        f"through the worker per repetition, {data['known_share']:.0%} about known people (by "
        "email, phone or SCL id, sampled across the whole tenant), the rest about new people "
        f"who each appear twice; types: {', '.join(data['types'])}.",
        "",
        "How the data is prepared, so that a rerun on a new machine measures the same thing: "
        "the tenant is grown to the size (generated ZA members), then before each timed "
        "repetition the tables the pipeline writes (profiles, aliases, sync log, activities, "
        "consent records) get `VACUUM ANALYZE` and a `CHECKPOINT` (autovacuum may be off, and "
        "each repetition leaves dead sync-log rows); a warm-up pass of 2,000 events runs "
        "before the timed ones (worker processes, connections, caches); every figure is "
        f"measured {data['repeats']} times on fresh events and reported as the median, with "
        "min, max and spread ((max - min) / median)."
        + (
            " Load average (1 min) at the start and end of the run, on 2 CPUs: "
            f"{data['load_average'][0]} and {data['load_average'][1]} (above 2, other "
            "work shared the CPUs and the figures are lower than the machine can do)."
            if data.get("load_average")
            else ""
        ),
        "",
        "How the worker alone is measured: the events are written to the sync log first "
        "(validated and inserted in-process, their processing not queued), so the REST side "
        "(parsing, validation, the sync-log insert, the HTTP server) is not in the figure; it "
        "is in the end to end one. The worker is the one deployed: a Celery worker (prefork, "
        "concurrency 2, one process per core), started and warmed up with 2,000 events "
        "before the timed runs, on a queue of its own. Each run queues every batch of the "
        "run's events at once (one task per batch, as ingestion queues them) and is timed "
        "from the first task queued until no row of the run is pending in the sync log "
        "(polled every 10 ms, a few rows by primary key each time). Besides it, the rate of "
        "one process: the same batches processed in this process, one after the other, with "
        "no broker, the cost per event of one worker process (the deployed worker runs two, "
        "which overlap one's wait on PostgreSQL with the other's Python)."
        + (
            ""
            if deployed
            else " _The run below was recorded before the deployed worker was measured: "
            "its worker figure is the one process's, and the check read it._"
        ),
        "",
        *_checks_table(
            results,
            {
                "end_to_end_events_per_s": (
                    "End to end, REST → Redis → worker → PostgreSQL, median",
                    "events/s",
                    "≥",
                ),
                "worker_events_per_s": (worker_label, "events/s", "≥"),
                "timeline_first_page_p99_ms": (
                    f"Timeline first page, customer with {timeline['activities']:,} "
                    "activities, p99 (median of runs)",
                    "ms",
                    "≤",
                ),
            },
        ),
        "",
        "| measurement | figures |",
        "|---|---|",
    ]
    if deployed:
        lines.append(
            f"| worker alone, as deployed (Celery prefork, concurrency {deployed['processes']}, "
            f"{deployed['batches']} batches of {deployed['batch_size']} queued at once; the "
            f"events already in the sync log) | {_spread(deployed['events_per_s'], ' events/s')}"
            f"; {deployed['us_per_event']} µs per event{_worker_cpu(deployed)} |"
        )
    lines += [
        f"| one worker process (in-process, no broker, batches of "
        f"{one_process['batch_size']} one after the other) | "
        f"{_spread(one_process['events_per_s'], ' events/s')}; {one_process['us_per_event']} "
        "µs per event in that process |",
        f"| end to end ({e2e['gunicorn_workers']} gunicorn workers, Celery concurrency "
        f"{e2e['celery_concurrency']}, 2 load clients posting 1,000 events per request) | "
        f"{_spread(e2e['events_per_s'], ' events/s')}; all accepted (202) after "
        f"{e2e['accepted_in_s']['median']} s (median); POST p99 {e2e['post_p99_ms']['median']} "
        f"ms; {e2e['http_errors']} HTTP errors in {e2e['requests']} requests |",
    ]
    for key, label in (
        ("first_page", "timeline first page (50), 1 client"),
        ("first_page_commerce", "timeline first page, category filter, 1 client"),
        ("first_page_wrk", "timeline first page (50), 1 wrk connection"),
        ("first_page_commerce_wrk", "timeline first page, category filter, 1 wrk connection"),
    ):
        row = timeline.get(key)
        if row is None:
            continue
        lines.append(
            f"| {label}, {row['requests_per_run']} requests per run | median "
            f"{row['median_ms']['median']} ms, p99 {_spread(row['p99_ms'], ' ms')}, "
            f"{row['requests_per_s']['median']} req/s, {row['errors']} errors{_cpu(row)} |"
        )
    lines += _timeline_note(timeline)
    lines += [
        "",
        "### Side by side with the naive design (same data, same run)",
        "",
        "The naive design the guide sketches, measured on a sample of "
        f"{nw['sampled_events']:,} events and extrapolated to the batched run's count "
        "(sampled, not run in full). Each row compares like with like, as said in it:",
        "",
        "| path | batched (median) | naive (sampled) | naive, extrapolated | batched / naive |",
        "|---|---|---|---|---|",
        "| one worker process, in-process, no broker: batches vs one transaction, one "
        "resolver call (`identity_resolve`) and one ORM activity insert per event | "
        f"{one_process['events_per_s']['median']:,} events/s | "
        f"{nw['events_per_s']:,} events/s ({nw['sampled_events']:,} in {nw['seconds']} s) | "
        f"{nw['extrapolated_events']:,} events in {nw['extrapolated_s']:,} s | "
        f"**{naive['worker_ratio']}x** |",
    ]
    if deployed and "queued_worker_ratio" in naive:
        lines.append(
            "| the worker alone as deployed (queue and the real worker, concurrency 2, the "
            "events already in the sync log): one task per batch vs one Celery task per "
            f"event | {deployed['events_per_s']['median']:,} events/s | "
            f"{nq['events_per_s']:,} events/s ({nq['sampled_events']:,} in {nq['seconds']} s) "
            f"| {deployed['events']:,} events in "
            f"{round(deployed['events'] / nq['events_per_s'], 1):,} s | "
            f"**{naive['queued_worker_ratio']}x** |"
        )
    lines += [
        "| end to end (the REST side included) vs one Celery task per event (queue and "
        "worker only, the REST side not included: the naive side is flattered) | "
        f"{e2e['events_per_s']['median']:,} events/s end to end | {nq['events_per_s']:,} "
        f"events/s ({nq['sampled_events']:,} in {nq['seconds']} s, queue and worker only) | "
        f"{nq['extrapolated_events']:,} events in {nq['extrapolated_s']:,} s | "
        f"**{naive['end_to_end_ratio']}x** |",
        "",
        "### Growth: per-item cost by data size",
        "",
        '`make bench BENCH_ARGS="--suite events --ladder"` measures on tenants of 100k, '
        "300k and 1M profiles (one each, shared by the suites: `bench-100k`, `bench-300k`, "
        "`bench`; the events add a few percent of new people to each), and a run without "
        "`--ladder` has one row; the goal is a flat cost per event. The worker columns are "
        "the check's figure (as deployed, when measured); µs/event is wall time per event "
        "(1 / rate).",
        "",
    ]
    if deployed:
        lines += [
            "| profiles | worker events/s | worker µs/event | worker CPU µs/event "
            "(processes + PostgreSQL) | one process events/s | one process µs/event "
            "| end to end events/s | end to end µs/event |",
            "|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| profiles | worker events/s | worker µs/event | end to end events/s "
            "| end to end µs/event |",
            "|---|---|---|---|---|",
        ]
    for rung in results["growth"]:
        if deployed:
            cpu = rung["worker_cpu_us_per_event"]
            lines.append(
                f"| {rung['profiles']:,} | {rung['worker_events_per_s']:,} | "
                f"{rung['worker_us_per_event']:,} | {cpu['worker']:,} + {cpu['postgres']:,} | "
                f"{rung['one_process_events_per_s']:,} | {rung['one_process_us_per_event']:,} "
                f"| {rung['end_to_end_events_per_s']:,} | {rung['end_to_end_us_per_event']:,} |"
            )
        else:
            lines.append(
                f"| {rung['profiles']:,} | {rung['worker_events_per_s']:,} | "
                f"{rung['worker_us_per_event']:,} | {rung['end_to_end_events_per_s']:,} | "
                f"{rung['end_to_end_us_per_event']:,} |"
            )
    lines += ["", "### Profile (cProfile, in-process, untimed pass)", ""]
    for key, title in (("before", "Before"), ("after", "This run")):
        profiles = results.get("profiles_compared", {}).get(key)
        if profiles is None and key == "after":
            profiles = results["profile"]
        if profiles is None:
            continue
        if profiles.get("note"):
            lines += [f"{title}: {profiles['note']}", ""]
        lines += _profile_table(
            f"{title}, ingest (validation and the sync-log insert)", profiles["ingest"]
        )
        lines += _profile_table(f"{title}, worker (batched processing)", profiles["worker"])
    lines += [
        "### The worker, statement by statement",
        "",
        "`python -m benchmarks.events_worker_profile` profiles the worker's batches on the "
        "bench database: time and calls per statement of a batch (the round trips), CPU time "
        "per event of the worker and of its PostgreSQL backend (steadier than wall time on a "
        "shared machine), WAL per event, cProfile, and EXPLAIN (ANALYZE, BUFFERS) of every "
        "statement of one batch. Before and after the worker changes of issue 18, on the same "
        "data: [docs/profiles/](profiles/README.md).",
        "",
    ]
    return lines


def _segments(results: dict) -> list[str]:
    data, preview = results["data"], results["preview"]
    first, one, same = (
        results["first_refresh"],
        results["one_percent_refresh"],
        results["unchanged_refresh"],
    )
    naive = results.get("naive")
    rules = "; ".join(
        f"{r['field']} {r['operator']} {r['value']}" for r in data["criteria"]["rules"]
    )
    run = one["runs"][0]
    lines = [
        "## Segments",
        "",
        f"Data: {data['profiles']:,} profiles. Criteria (AND): {rules}: "
        f"{preview['count']:,} people ({preview['share']:.0%}). Each figure: the median of "
        f"{data.get('repeats', 1)} runs, each after `VACUUM ANALYZE` of the profile, "
        "membership, history and profile-change tables and a `CHECKPOINT`, after a warm-up "
        f"(load average before and after: {data.get('load_average')}).",
        "",
        *_checks_table(
            results,
            {
                "first_refresh_s": ("First refresh (every member inserted and recorded)", "s", "≤"),
                "one_percent_refresh_s": ("Refresh after about 1% of people changed", "s", "≤"),
                "preview_count_s": ("Preview count, median", "s", "≤"),
            },
        ),
        "",
        "| measurement | figures |",
        "|---|---|",
        f"| first refresh (one `INSERT ... SELECT` in customer order, history in the same "
        f"statement) | {first['members']:,} members entered in {_spread(first['seconds'], ' s')}; "
        f"{first['us_per_member']} µs per member |",
        f"| 1% refresh (incremental) | {run['profiles_changed']:,} profiles changed, "
        f"{run['checked']:,} checked: +{run['entered']:,} -{run['left']:,} in "
        f"{_spread(one['seconds'], ' s')}; {one['us_per_changed_profile']} µs per changed "
        "profile |",
        f"| refresh with nothing changed | {_spread(same['seconds'], ' s')} |",
        f"| preview count | median {preview['median_s']} s, max {preview['max_s']} s over "
        f"{preview['runs']} runs |",
        "",
    ]
    before = results.get("before")
    if before:
        old, rerun, loaded = (
            before["recorded_2026_11_25"],
            before["rerun_issue_18"],
            before["old_code_loaded_machine"],
        )
        lines += [
            "Before the incremental refresh (every refresh matched the whole tenant into a "
            "temporary table and diffed it): first refresh "
            f"{old['first_refresh_s']} s and 1% refresh {old['one_percent_refresh_s']} s "
            f"recorded on a quiet machine ({rerun['first_refresh_s']} s and "
            f"{rerun['one_percent_refresh_s']} s on a rerun); the old code on the loaded "
            f"machine this run was recorded on: {loaded['first_refresh_s']} s, "
            f"{loaded['one_percent_refresh_s']} s, and {loaded['unchanged_refresh_s']} s with "
            "nothing changed (one run each, not under the bench lock).",
            "",
        ]
        amd = before.get("main_amd_2026_12_06")
        if amd:
            lines += [
                "Before the membership lookups by array, `ON CONFLICT` and the ascending "
                "history index (main at 7086a58, the AMD EPYC VM, under the bench lock, load "
                f"average {amd['load_average']}): first refresh {amd['first_refresh_s']} s, "
                f"1% refresh {amd['one_percent_refresh_s']} s, nothing changed "
                f"{amd['unchanged_refresh_s']} s, the naive design "
                f"{amd['naive_one_percent_refresh_s']} s (medians of 3); see "
                "[profiles/segments-refresh.md](profiles/segments-refresh.md).",
                "",
            ]
    pair = (before or {}).get("membership_key_pair_intel_2026_12_06")
    if pair:
        main, key = pair["main"], pair["membership_key"]
        lines += [
            "Before the membership kept one index (its surrogate id and its `(tenant, "
            "customer)` index gone), back to back in the profiler on the Intel Xeon VM, 3 runs "
            f"each (load average {pair['load_average']}): first refresh "
            f"{main['first_refresh_s']} s, backend CPU {main['first_refresh_backend_cpu_s']} "
            f"s, WAL {main['first_refresh_wal_mb']} MB on main against {key['first_refresh_s']} "
            f"s, {key['first_refresh_backend_cpu_s']} s, {key['first_refresh_wal_mb']} MB; 1% "
            f"refresh {main['one_percent_refresh_s']} s ({main['one_percent_refresh_wal_mb']} "
            f"MB of WAL) against {key['one_percent_refresh_s']} s "
            f"({key['one_percent_refresh_wal_mb']} MB); see "
            "[profiles/segments-refresh.md](profiles/segments-refresh.md).",
            "",
        ]
    if naive:
        lines += [
            "### Side by side with the naive design (same data, same run)",
            "",
            "A twin segment with the same rules, refreshed after the same 1% change by "
            "deleting every member and inserting every match again (the entered/left history "
            "from the difference of the old and new sets); the run checks both end with the "
            "same members and the same entered/left counts. Run in full, not sampled.",
            "",
            "| refresh after 1% changed | incremental (median) | naive delete-all and "
            "re-insert (median) | naive / incremental |",
            "|---|---|---|---|",
            f"| {run['profiles_changed']:,} profiles changed | {one['seconds']['median']} s | "
            f"{_spread(naive['one_percent_refresh_s'], ' s')} | "
            f"**{naive['one_percent_ratio']}x** |",
            "",
        ]
    lines += [
        "### Growth: per-item cost by data size",
        "",
        '`make bench BENCH_ARGS="--suite segments --ladder"` measures tenants of 100k and '
        "300k profiles (their own tenants in the same database) and the 1M tenant; the goal "
        "is a flat cost per member for the first refresh and per changed profile for the "
        "1% refresh.",
        "",
        "| profiles | members | first refresh s | µs/member | profiles changed "
        "| 1% refresh s | µs/changed profile |",
        "|---|---|---|---|---|---|---|",
    ]
    for rung in results.get("growth", []):
        lines.append(
            f"| {rung['profiles']:,} | {rung['members']:,} | {rung['first_refresh_s']} | "
            f"{rung['first_us_per_member']} | {rung['profiles_changed']:,} | "
            f"{rung['one_percent_refresh_s']} | {rung['one_percent_us_per_changed']} |"
        )
    lines += [
        "",
        "`python -m benchmarks.segments_profile` profiles a first and a 1% refresh on the "
        "bench database: time and calls per statement, CPU time of the PostgreSQL backend "
        "(steadier than wall time on a shared machine), WAL, what each membership and history "
        "table and index grew by, and EXPLAIN (ANALYZE, BUFFERS, WAL) of every statement. "
        "Before and after: [profiles/segments-refresh.md](profiles/segments-refresh.md).",
    ]
    profile = results.get("profile")
    if profile:
        lines += ["", "### Profile of the first refresh (EXPLAIN ANALYZE)", ""]
        for key, title in (("before", "Before"), ("after", "This run")):
            if profile.get(key):
                lines += [f"{title}:", "", "```", *profile[key], "```", ""]
    return [*lines, ""]


def _campaigns(results: dict) -> list[str]:
    data, snapshot, hand_off = results["data"], results["snapshot"], results["hand_off"]
    lines = [
        "## Campaign fan-out",
        "",
        f"Data: {data['profiles']:,} profiles; a static segment of {data['recipients']:,} "
        "people; one email template greeting by first name, with a link; a backend that "
        "discards each message after it is rendered (HTML sanitised and its text part, "
        "unsubscribe token, idempotency key; link tracking is the Messaging service's, as "
        "with the HTTP backend).",
        "",
        *_checks_table(
            results,
            {
                "fan_out_messages_per_s": (
                    "Fan-out, prepared and handed off (snapshot + sends), median",
                    "messages/s",
                    "≥",
                ),
                "snapshot_s": ("Snapshot of the recipients", "s", "≤"),
            },
        ),
        "",
    ]
    repeats = data.get("repeats", 1)
    if "fan_out_spread" in results:
        fan = results["fan_out_spread"]
        lines += [
            f"Each run is repeated {repeats} times on prepared data (the message table "
            "vacuumed and analysed, a checkpoint, before each); the run reported below is "
            "the median one.",
            "",
        ]
    lines += [
        "| measurement | figures |",
        "|---|---|",
        f"| snapshot (one INSERT ... SELECT: consent, suppression, address, cap) | "
        f"{snapshot['rows']:,} message rows ({snapshot['queued']:,} queued, the rest skipped "
        f"with a reason) in {snapshot['seconds']} s |",
        f"| hand-off ({hand_off['processes']} sender processes claiming with SKIP LOCKED) | "
        f"{hand_off['messages']:,} messages in {hand_off['seconds']} s = "
        f"**{hand_off['messages_per_s']:,} messages/s**; {hand_off['left_queued']} left |",
    ]
    if "fan_out_spread" in results:
        lines.append(
            f"| fan-out over {repeats} runs | median {fan['median']:,}, min {fan['min']:,}, "
            f"max {fan['max']:,} messages/s (spread {fan['spread_pct']}%); "
            f"{results['us_per_message']} µs per message |"
        )
    naive = results.get("naive")
    if naive:
        lines += [
            "",
            "### Side by side with the naive design (same data, same run)",
            "",
            "The guide's sketch: one job per recipient, each in its own transaction (lock and "
            "read the message, read the person, check consent and suppression, render, send, "
            "save the row), in the same two processes, on a sample of the run's queued rows "
            "and extrapolated; the queue's own cost per job is not counted, so the ratio is a "
            "lower bound.",
            "",
            "| path | batched (median) | naive (sampled) | naive, extrapolated | batched / naive |",
            "|---|---|---|---|---|",
            f"| hand-off | {hand_off['messages_per_s']:,} messages/s | "
            f"{naive['messages_per_s']:,} messages/s ({naive['sample']:,} in "
            f"{naive['seconds']} s) | {snapshot['queued']:,} messages in "
            f"{naive['extrapolated_s']:,} s | **{naive['ratio']}x** |",
        ]
    growth = results.get("growth")
    if growth:
        lines += [
            "",
            "### Growth: per-message cost by data size",
            "",
            '`make bench BENCH_ARGS="--suite campaigns --ladder"` sends to every tenth '
            "person (at most 100,000) of tenants of 100k, 300k and 1M profiles (one each, "
            "shared by the suites; a run without `--ladder` has one row); the goal is a flat "
            "cost per message.",
            "",
            "| profiles | recipients | fan-out messages/s (median) | µs per message |",
            "|---|---|---|---|",
            *(
                f"| {rung['profiles']:,} | {rung['recipients']:,} | "
                f"{rung['fan_out_messages_per_s']:,} | {rung['us_per_message']:,} |"
                for rung in growth
            ),
        ]
    return [*lines, ""]


def _sweep_runs(sweep: dict) -> str:
    rates = sweep.get("rates")  # recorded before 2026-12-07: one run
    if not rates or len(rates["runs"]) < 2:
        return "; one run"
    runs = ", ".join(f"{rate:,}" for rate in rates["runs"])
    return (
        f"; the median of {len(rates['runs'])} runs of {runs} transitions/s "
        f"(spread {rates['spread_pct']}%)"
    )


def _journeys(results: dict) -> list[str]:
    ingestion, sweep, analytics = results["ingestion"], results["wait_sweep"], results["analytics"]
    without, with_ = ingestion["without_journeys"], ingestion["with_journeys"]
    return [
        "## Journeys",
        "",
        f"Data: {results['data']['profiles']:,} profiles. Ingestion: the events suite's "
        f"in-process worker rate, without journeys and with {ingestion['journeys']} "
        "ACTIVE journeys triggered by "
        f"{', '.join(results['data']['trigger_types'])} (WAIT a day, then END), in the same run"
        + (
            f" in {ingestion['chunks']} alternating chunks each (the journeys paused between;"
            " after a warm-up pass, each chunk's tables vacuumed and analysed and a"
            " checkpoint taken before it is timed, as in the events suite)."
            if ingestion.get("chunks")
            else "."
        ),
        "",
        *_checks_table(
            results,
            {
                "ingestion_with_journeys_share": (
                    "Ingestion with 5 event-triggered journeys, share of the rate without",
                    "",
                    "≥",
                ),
                "wait_sweep_transitions_per_s": (
                    f"Wait sweep, {sweep['enrollments']:,} due enrollments",
                    "transitions/s",
                    "≥",
                ),
                "analytics_p99_ms": (
                    f"Journey analytics, {analytics['history_rows']:,} history rows, p99",
                    "ms",
                    "≤",
                ),
            },
        ),
        "",
        "| measurement | figures |",
        "|---|---|",
        f"| ingestion without journeys | {without['events']:,} events in {without['seconds']} s "
        f"= **{without['events_per_s']:,} events/s** |",
        f"| ingestion with journeys | {with_['events']:,} events in {with_['seconds']} s "
        f"= **{with_['events_per_s']:,} events/s**; {ingestion['enrolled']:,} people enrolled |",
        f"| wait sweep (`journeys_advance`, batches claimed with SKIP LOCKED) | "
        f"{sweep['advanced']:,} advanced in {sweep['seconds']} s "
        f"({sweep['at_next_step']:,} at the next step){_sweep_runs(sweep)} |",
        f"| journey analytics (`journey_analytics`, {analytics['entered']:,} enrollments) | "
        f"n {analytics['n']}, median {analytics['median_ms']} ms, p99 {analytics['p99_ms']} ms |",
        "",
    ]


def _scoring_run(run: dict) -> str:
    steps = ", ".join(f"{name} {s} s" for name, s in run["steps_s"].items())
    return (
        f"{run['seconds']} s ({steps}); {run['changed']:,} score rows and "
        f"{run['profiles_changed']:,} profiles written, {run['pruned']:,} pruned"
    )


def _scoring(results: dict) -> list[str]:
    data, nightly, overview, backtest = (
        results["data"],
        results["nightly"],
        results["analytics_overview"],
        results["backtest"],
    )
    auc = "none (one class only)" if backtest["auc"] is None else backtest["auc"]
    nights = [
        f"| night {n} (clock +{n} day{'s' if n > 1 else ''}) | {_scoring_run(run)} |"
        for n, run in enumerate(nightly["nights"], start=1)
    ]
    return [
        "## Scoring",
        "",
        f"Data: {data['profiles']:,} profiles, {data['activities']:,} activities, "
        f"{data['messages']:,} messages, {data['interactions']:,} interactions in one tenant; "
        "tables vacuumed and analysed first. The catch-up run scores as of now (on a fresh "
        "database it writes every profile); each night moves the clock one day on, with no new "
        "events, so windows and recency move and some scores change."
        + _load_note(data.get("load_average")),
        "",
        *_checks_table(
            results,
            {
                "nightly_s": (
                    "Nightly scoring of every profile (recount, engagement and churn, "
                    f"aggregates), median of {len(nights)} nights",
                    "s",
                    "≤",
                ),
                "analytics_overview_p99_ms": ("Analytics overview, p99", "ms", "≤"),
            },
        ),
        "",
        f"Stretch target for the nightly run: ≤ {results['stretch']['nightly_s']} s.",
        "",
        "| measurement | figures |",
        "|---|---|",
        f"| catch-up run (`tenant_score`, one transaction; {nightly['scored']:,} scored) | "
        f"{_scoring_run(nightly['catch_up'])} |",
        *nights,
        f"| analytics overview (in-process) | n {overview['n']}, median "
        f"{overview['median_ms']} ms, p99 {overview['p99_ms']} ms |",
        f"| churn backtest on the synthetic demo history ({backtest['profiles']:,} profiles, "
        f"horizon {backtest['horizon_days']} days) | population {backtest['population']:,}, "
        f"{backtest['churners']:,} churners; **AUC {auc}**, top-decile lift "
        f"{backtest['top_decile_lift']}; {backtest['seconds']} s |",
        "",
        *_scoring_naive(results.get("naive"), nightly),
        *_scoring_growth(results.get("growth")),
    ]


def _scoring_growth(growth: list[dict] | None) -> list[str]:
    if not growth:
        return []
    return [
        "### Growth: per-profile cost by data size",
        "",
        '`make bench BENCH_ARGS="--suite scoring --ladder"` also scores tenants of 100k and '
        "300k profiles (their own tenants, the same history per profile, in the same "
        "database); a run without `--ladder` has one row. The goal is a flat cost per "
        "profile.",
        "",
        "| profiles | nightly run s (median night) | µs per profile | catch-up run s |",
        "|---|---|---|---|",
        *(
            f"| {rung['profiles']:,} | {rung['nightly_s']} | {rung['us_per_profile']} | "
            f"{rung['catch_up_s']} |"
            for rung in growth
        ),
        "",
    ]


def _load_note(load: list[float] | None) -> str:
    if not load:
        return ""
    busy = " (above 2, other work shared the CPUs)" if max(load) > 2 else ""
    return (
        " Load average (1 min) at the start and end of the run, on 2 CPUs: "
        f"{load[0]} and {load[1]}{busy}."
    )


def _scoring_naive(naive: dict | None, nightly: dict) -> list[str]:
    if not naive:
        return []
    return [
        "### Side by side with the naive design (same data, same run)",
        "",
        "The guide's per-row design on a random sample of profiles: each profile's inputs read "
        "by queries of its own, its engagement score computed in Python (the §10.1 reference) "
        "and its score row and profile saved one by one, extrapolated to every profile. It "
        "computes engagement only, so the ratio to the set-wise pass (engagement and churn) "
        "is a lower bound.",
        "",
        "| path | set-wise (median night) | naive (sampled) | naive, extrapolated "
        "| set-wise / naive |",
        "|---|---|---|---|---|",
        f"| scoring every profile | {naive['batched_profiles_per_s']:,} profiles/s | "
        f"{naive['profiles_per_s']:,} profiles/s ({naive['sample']:,} in {naive['seconds']} s) "
        f"| {nightly['scored']:,} profiles in {naive['extrapolated_s']:,} s "
        f"| **{naive['ratio']}x** |",
        "",
    ]


def _loadtest(results: dict) -> list[str]:
    setup, operations, events = results["setup"], results["operations"], results["events"]
    total = operations["total"]
    lines = [
        "## Load test",
        "",
        f"`make loadtest` (locust, `benchmarks/load/locustfile.py`): {setup['users']} users "
        f"for {setup['duration']} against gunicorn ({setup['gunicorn_workers']} workers) and a "
        f"real Celery worker (concurrency {setup['celery_concurrency']}) on 127.0.0.1, "
        f"{results['data']['profiles']:,} profiles. The mix: event batches, resolves, "
        "timeline reads, signed Messaging webhook callbacks and staff admin pages in a "
        "logged-in session; statistics reset once every user had started, so the figures "
        "are the sustained mix. Locust runs on the same CPUs as the server.",
        "",
        f"**Sustained: {total['requests_per_s']:,} requests/s, p99 {total['p99_ms']:g} ms, "
        f"{total['failures']} failed of {total['requests']:,} requests; "
        f"{events['events']:,} events posted and processed "
        f"({events['events'] / total['seconds']:,.0f} events/s over the run), "
        f"{events['failed']} failed, "
        f"{events['pending']} still pending {events['drain_after_load_s']} s after the load "
        "stopped.**",
        "",
        "| operation | requests | failed | req/s | median ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in sorted(operations.items(), key=lambda item: item[0] == "total"):
        label = "**all**" if name == "total" else name
        lines.append(
            f"| {label} | {row['requests']:,} | {row['failures']} | {row['requests_per_s']} "
            f"| {row['median_ms']:g} | {row['p99_ms']:g} | {row['max_ms']:g} |"
        )
    return [*lines, ""]


def _backfill(results: dict) -> list[str]:
    data, first, again = results["data"], results["first_import"], results["second_import"]
    small, quality = results["dry_run_small"], results["quality"]
    phases = ", ".join(f"{name} {s} s" for name, s in first["phases"].items())
    outcomes = ", ".join(
        f"{k} {v:,}" for k, v in sorted(again["counters"]["member_outcomes"].items())
    )
    return [
        "## Backfill (MCA v1 import)",
        "",
        f"Data: a generated {data['region']} export of {data['members']:,} member records, "
        f"{data['rounds']:,} rounds and {data['transactions']:,} transactions "
        "(`benchmarks/backfill_export.py`: same person at two clubs, re-joins, re-typed copies "
        "without a shared key, the format's faults), imported into an empty tenant."
        + _load_note(results.get("load_average")),
        "",
        *_checks_table(
            results,
            {
                "member_rows_per_s": (
                    "Member rows imported with exact keys (staging, planning, loading people; "
                    "duplicate detection apart)",
                    "rows/s",
                    "≥",
                ),
                "duplicate_detection_s": (
                    f"Duplicate detection over the {data['members']:,} records",
                    "s",
                    "≤",
                ),
                "duplicate_precision_share": ("Duplicate precision (labelled set)", "", "≥"),
                "duplicate_recall_share": ("Duplicate recall (labelled set)", "", "≥"),
            },
        ),
        "",
        "| measurement | figures |",
        "|---|---|",
        f"| first import | {first['seconds_total']} s in all; rounds "
        f"{first['rounds_per_s']:,} rows/s, transactions {first['transactions_per_s']:,} rows/s "
        f"(staging and loading each); reconciled: {first['counters']['reconciled']}; "
        f"phases: {phases} |",
        f"| peak memory of the import process | {small['peak_rss_mib']} MiB at "
        f"{small['members']:,} member records (dry run), {first['peak_rss_mib']} MiB at "
        f"{data['members']:,}"
        + (
            f" (the largest staging process: {first['staging_process_peak_rss_mib']} MiB)"
            if "staging_process_peak_rss_mib" in first
            else ""
        )
        + " |",
        f"| duplicate detection, growth | {small['phases'].get('duplicates', 0)} s at "
        f"{small['members']:,} member records (dry run), "
        f"{first['phases'].get('duplicates', 0)} s at {data['members']:,} |",
        f"| the same export again | {again['seconds_total']} s; {outcomes}; "
        f"{again['activities_added']:,} activities added |",
        f"| duplicate quality ({quality['people']:,} people + {quality['true_pairs']:,} "
        f"re-typed copies + hard negatives, threshold {quality['threshold']}) | "
        f"{quality['merged_automatically']:,} merged automatically "
        f"({quality['merged_wrongly']} wrongly), {quality['suggested']:,} suggested; "
        f"precision {quality['precision']}, recall {quality['recall']}; duplicate detection "
        f"{quality['duplicates_s']} s |",
        "",
    ]


RENDERERS = {
    "identity": _identity,
    "events": _events,
    "segments": _segments,
    "campaigns": _campaigns,
    "journeys": _journeys,
    "scoring": _scoring,
    "loadtest": _loadtest,
    "backfill": _backfill,
}


def write(
    output_dir: Path, suite: str, results: dict, meta: dict, notes: list[str] | None = None
) -> Path:
    """Store a suite's run in benchmarks.json (a new run's entry has no notes: they were
    about the run it replaces) and render benchmarks.md from every stored suite."""
    output_dir.mkdir(parents=True, exist_ok=True)
    raw_path = output_dir / "benchmarks.json"
    raw = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    raw[suite] = {"meta": meta, "results": results, **({"notes": notes} if notes else {})}
    raw_path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`python -m benchmarks`) on generated data in a separate",
        "database (`crm_bench`), on the machine each suite's line names. Three suites run in a",
        "process and a database of their own unless `--database` names one, because their",
        "writes would slow the others or theirs: journeys (`crm_bench_journeys`: some 1.4M",
        "rows a run; it drops the previous run's journeys first), scoring (`crm_bench_scoring`:",
        "its whole-table passes would read other suites' dead rows) and backfill",
        "(`crm_bench_backfill`: it imports into an empty tenant). Figures are recorded here,",
        "never asserted in timed unit tests. Raw results: `docs/benchmarks.json`. HTTP figures",
        "come from load clients on the same machine as the server (gunicorn; each suite names",
        "its workers), PostgreSQL and Redis, so clients and server share the CPUs: Python",
        "client processes, and for the resolve and timeline figures also wrk (`make wrk`",
        "installs Debian's), a C load generator that takes far less of the CPUs from the",
        "server.",
        "",
        "Comparing runs: VMs sold as the same type have run the same commit 1.4 to 2 times",
        "apart. Each run therefore times a fixed piece of work when it starts (best of 5;",
        "`benchmarks.harness.reference_work`): in Python, building, encoding, decoding and",
        "sorting 20,000 small records; in PostgreSQL, the md5 of 100,000 numbers, JIT off. The",
        "suite's line shows both (lower is faster). Two runs whose reference figures differ",
        "ran on machines of different speed; a change in a figure with the same reference",
        "figures is the code's.",
        "",
    ]
    for name, entry in raw.items():
        meta_ = entry["meta"]
        lines += [
            f"_Suite `{name}`: run {meta_['date']} on {meta_['cpus']} CPUs ({meta_['cpu']}), "
            f"{meta_['memory_gib']} GiB, Python {meta_['python']}, {meta_['postgres']}"
            f"{_reference(meta_)}._",
            "",
            *RENDERERS[name](entry["results"]),
            *_notes(entry),
        ]
    markdown = output_dir / "benchmarks.md"
    markdown.write_text("\n".join(lines))
    return markdown


def _reference(meta: dict) -> str:
    """The machine's speed on the reference work (``harness.reference_work``), when the run
    measured it."""
    reference = meta.get("reference")
    if not reference:
        return ""
    return (
        f"; reference work (lower is faster): Python {reference['python_ms']} ms, "
        f"PostgreSQL {reference['postgres_ms']} ms"
    )


def _notes(entry: dict) -> list[str]:
    """What the person recording a run wrote about it (``"notes"`` beside ``"meta"`` in
    benchmarks.json: the machine's other work, the code each step ran), after the figures."""
    lines: list[str] = []
    for note in entry.get("notes") or []:
        lines += [">", f"> {note}"] if lines else [f"> {note}"]
    return [*lines, ""] if lines else []


def rerender(output_dir: Path) -> Path:
    """Rewrite the markdown from the stored results (after a change to this module)."""
    raw = json.loads((output_dir / "benchmarks.json").read_text())
    path = output_dir / "benchmarks.md"
    for suite, entry in raw.items():
        path = write(output_dir, suite, entry["results"], entry["meta"], entry.get("notes"))
    return path
