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
        "http_single_p99_ms": ("HTTP resolve, 1 client, p99", "ms", "≤"),
        "http_8_clients_rps": ("HTTP resolve, 8 clients, throughput", "req/s", "≥"),
    }
    lines = [
        "## Identity resolution",
        "",
        f"Data: {results['data']['profiles']:,} profiles, {results['data']['aliases']:,} "
        "identity aliases in one tenant (generated ZA members).",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
    ]
    for name, (label, unit, sign) in labels.items():
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
        ("http_single_client", "HTTP POST /customers/resolve, 1 client"),
        ("http_8_clients", "HTTP POST /customers/resolve, 8 clients"),
    ):
        row = results[key]
        extra = []
        if "queries_per_call" in row:
            extra.append(f"{row['queries_per_call']} query per call")
        if "requests_per_s" in row:
            extra.append(f"{row['requests_per_s']} req/s, {row['errors']} errors")
        lines.append(
            f"| {label} | {row['n']} | {row['median_ms']} | {row['p99_ms']} | {row['mean_ms']} "
            f"| {', '.join(extra)} |"
        )
    return [*lines, ""]


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


def _events(results: dict) -> list[str]:
    data, worker, e2e, timeline = (
        results["data"],
        results["worker_in_process"],
        results["end_to_end"],
        results["timeline"],
    )
    lines = [
        "## Event ingestion and the timeline",
        "",
        f"Data: {data['profiles']:,} profiles, {data['aliases']:,} aliases; "
        f"{data['events_end_to_end']:,} events end to end, {data['known_share']:.0%} about "
        "known people (by email, phone or SCL id), the rest about new people who each appear "
        f"twice; types: {', '.join(data['types'])}.",
        "",
        *_checks_table(
            results,
            {
                "end_to_end_events_per_s": (
                    "End to end, REST → Redis → worker → PostgreSQL",
                    "events/s",
                    "≥",
                ),
                "timeline_first_page_p99_ms": (
                    f"Timeline first page, customer with {timeline['activities']:,} "
                    "activities, p99",
                    "ms",
                    "≤",
                ),
            },
        ),
        "",
        "| measurement | figures |",
        "|---|---|",
        f"| worker's own rate (one process, in-process, batches of {worker['batch_size']}) | "
        f"{worker['events']:,} events in {worker['seconds']} s = "
        f"**{worker['events_per_s']:,} events/s** |",
        f"| end to end ({e2e['gunicorn_workers']} gunicorn workers, Celery concurrency "
        f"{e2e['celery_concurrency']}, 2 load clients posting 1,000 events per request) | "
        f"{e2e['events']:,} events in {e2e['seconds']} s; all accepted (202) after "
        f"{e2e['accepted_in_s']} s; POST p99 {e2e['post_p99_ms']} ms; "
        f"{e2e['http_errors']} HTTP errors |",
    ]
    for key, label in (
        ("first_page", "timeline first page (50), 1 client"),
        ("first_page_commerce", "timeline first page, category filter, 1 client"),
    ):
        row = timeline[key]
        lines.append(
            f"| {label} | n {row['n']}, median {row['median_ms']} ms, p99 {row['p99_ms']} ms, "
            f"{row['requests_per_s']} req/s, {row['errors']} errors |"
        )
    return [*lines, ""]


def _segments(results: dict) -> list[str]:
    data, preview = results["data"], results["preview"]
    first, one, same = (
        results["first_refresh"],
        results["one_percent_refresh"],
        results["unchanged_refresh"],
    )
    rules = "; ".join(
        f"{r['field']} {r['operator']} {r['value']}" for r in data["criteria"]["rules"]
    )
    return [
        "## Segments",
        "",
        f"Data: {data['profiles']:,} profiles. Criteria (AND): {rules}: "
        f"{preview['count']:,} people ({preview['share']:.0%}).",
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
        f"| first refresh | {first['members']:,} members entered in {first['seconds']} s |",
        f"| 1% refresh | {one['profiles_changed']:,} profiles changed: +{one['entered']:,} "
        f"-{one['left']:,} in {one['seconds']} s |",
        f"| refresh with nothing changed | {same['seconds']} s |",
        f"| preview count | median {preview['median_s']} s, max {preview['max_s']} s over "
        f"{preview['runs']} runs |",
        "",
    ]


def _campaigns(results: dict) -> list[str]:
    data, snapshot, hand_off = results["data"], results["snapshot"], results["hand_off"]
    return [
        "## Campaign fan-out",
        "",
        f"Data: {data['profiles']:,} profiles; a static segment of {data['recipients']:,} "
        "people; one email template with a link; a backend that discards each message "
        "after it is rendered (HTML sanitised, link and open tracking, unsubscribe token).",
        "",
        *_checks_table(
            results,
            {
                "fan_out_messages_per_s": (
                    "Fan-out, prepared and handed off (snapshot + sends)",
                    "messages/s",
                    "≥",
                ),
                "snapshot_s": ("Snapshot of the recipients", "s", "≤"),
            },
        ),
        "",
        "| measurement | figures |",
        "|---|---|",
        f"| snapshot (one INSERT ... SELECT: consent, suppression, address, cap) | "
        f"{snapshot['rows']:,} message rows ({snapshot['queued']:,} queued, the rest skipped "
        f"with a reason) in {snapshot['seconds']} s |",
        f"| hand-off ({hand_off['processes']} sender processes claiming with SKIP LOCKED) | "
        f"{hand_off['messages']:,} messages in {hand_off['seconds']} s = "
        f"**{hand_off['messages_per_s']:,} messages/s**; {hand_off['left_queued']} left |",
        "",
    ]


def _journeys(results: dict) -> list[str]:
    ingestion, sweep, analytics = results["ingestion"], results["wait_sweep"], results["analytics"]
    without, with_ = ingestion["without_journeys"], ingestion["with_journeys"]
    return [
        "## Journeys",
        "",
        f"Data: {results['data']['profiles']:,} profiles. Ingestion: the events suite's "
        f"in-process worker rate, without journeys and then with {ingestion['journeys']} "
        "ACTIVE journeys triggered by "
        f"{', '.join(results['data']['trigger_types'])} (WAIT a day, then END), in the same run.",
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
        f"({sweep['at_next_step']:,} at the next step) |",
        f"| journey analytics (`journey_analytics`, {analytics['entered']:,} enrollments) | "
        f"n {analytics['n']}, median {analytics['median_ms']} ms, p99 {analytics['p99_ms']} ms |",
        "",
    ]


def _scoring(results: dict) -> list[str]:
    data, nightly, overview, backtest = (
        results["data"],
        results["nightly"],
        results["analytics_overview"],
        results["backtest"],
    )
    steps = ", ".join(f"{name} {s} s" for name, s in nightly["steps_s"].items())
    auc = "none (one class only)" if backtest["auc"] is None else backtest["auc"]
    return [
        "## Scoring",
        "",
        f"Data: {data['profiles']:,} profiles, {data['activities']:,} activities, "
        f"{data['messages']:,} messages, {data['interactions']:,} interactions in one tenant.",
        "",
        *_checks_table(
            results,
            {
                "nightly_s": (
                    "Nightly scoring of every profile (recount, engagement, churn, aggregates)",
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
        f"| nightly run (`tenant_score`, one transaction) | {nightly['scored']:,} scored in "
        f"{nightly['seconds']} s; {steps} |",
        f"| analytics overview (in-process) | n {overview['n']}, median "
        f"{overview['median_ms']} ms, p99 {overview['p99_ms']} ms |",
        f"| churn backtest on the synthetic demo history ({backtest['profiles']:,} profiles, "
        f"horizon {backtest['horizon_days']} days) | population {backtest['population']:,}, "
        f"{backtest['churners']:,} churners; **AUC {auc}**, top-decile lift "
        f"{backtest['top_decile_lift']}; {backtest['seconds']} s |",
        "",
    ]


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
        "without a shared key, the format's faults), imported into an empty tenant.",
        "",
        *_checks_table(
            results,
            {
                "member_rows_per_s": (
                    "Member rows imported (staging, planning, duplicates, loading members)",
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
    "backfill": _backfill,
}


def write(output_dir: Path, suite: str, results: dict, meta: dict) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    raw_path = output_dir / "benchmarks.json"
    raw = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    raw[suite] = {"meta": meta, "results": results}
    raw_path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`python -m benchmarks`) on generated data in a separate",
        "database (`crm_bench`), on the machine below. Figures are recorded here, never",
        "asserted in timed unit tests. Raw results: `docs/benchmarks.json`. HTTP figures come",
        "from Python load-client processes on the same machine as the server (gunicorn, 4 sync",
        "workers), PostgreSQL and Redis, so clients and server share the CPUs.",
        "",
    ]
    for name, entry in raw.items():
        meta_ = entry["meta"]
        lines += [
            f"_Suite `{name}`: run {meta_['date']} on {meta_['cpus']} CPUs ({meta_['cpu']}), "
            f"{meta_['memory_gib']} GiB, Python {meta_['python']}, {meta_['postgres']}._",
            "",
            *RENDERERS[name](entry["results"]),
        ]
    markdown = output_dir / "benchmarks.md"
    markdown.write_text("\n".join(lines))
    return markdown


def rerender(output_dir: Path) -> Path:
    """Rewrite the markdown from the stored results (after a change to this module)."""
    raw = json.loads((output_dir / "benchmarks.json").read_text())
    path = output_dir / "benchmarks.md"
    for suite, entry in raw.items():
        path = write(output_dir, suite, entry["results"], entry["meta"])
    return path
