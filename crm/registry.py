"""In-process registries that let later apps plug into earlier ones without imports
pointing the wrong way (``customers`` never imports ``automation`` or ``social``).

Apps register in their ``AppConfig.ready()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)

#: ``hook(*, tenant, winner, loser) -> int``: moves the app's rows from loser to winner
#: set-wise inside the merge's transaction and returns how many rows moved.
MergeHook = Callable[..., int]
_merge_hooks: dict[str, MergeHook] = {}


def register_merge_hook(name: str, hook: MergeHook) -> None:
    _merge_hooks[name] = hook


def merge_hooks() -> dict[str, MergeHook]:
    return dict(_merge_hooks)


#: ``hook(*, tenant, customer, addresses) -> int``: erases the app's personal data of a
#: customer inside the erasure's transaction (``addresses``: every email and phone the
#: customer had, for suppression stubs) and returns how many rows it touched.
EraseHook = Callable[..., int]
_erase_hooks: dict[str, EraseHook] = {}


def register_erase_hook(name: str, hook: EraseHook) -> None:
    _erase_hooks[name] = hook


def erase_hooks() -> dict[str, EraseHook]:
    return dict(_erase_hooks)


#: ``panel(*, tenant, customer) -> dict``: what a later app shows on the staff console's
#: customer page (``{"template": ..., **context}``). A few indexed queries, however much
#: history the customer has: the page renders every registered panel.
CustomerPanel = Callable[..., dict[str, Any]]
_customer_panels: dict[str, CustomerPanel] = {}


def register_customer_panel(name: str, panel: CustomerPanel) -> None:
    _customer_panels[name] = panel


def customer_panels() -> dict[str, CustomerPanel]:
    return dict(_customer_panels)


#: ``rows(*, tenant, customer, people, viewer) -> Iterable[dict]``: one section of a
#: subject-access export (``customers.export``). ``customer`` is the live profile, ``people``
#: its id and the ids of the profiles merged into it (the same person), ``viewer`` who asks
#: (``ref``: notes rules). Rows are JSON-safe-ish dicts (dates, UUIDs and decimals are
#: encoded); a section must stream (``.values(...).iterator(chunk_size=...)``), never build a
#: list of a person's whole history.
ExportRows = Callable[..., Iterable[dict[str, Any]]]


@dataclass(frozen=True)
class ExportSection:
    """A part of the subject-access export: its key in the document, its heading on the
    human-readable page, the rows, and the models (``"app.Model"``) whose rows about a person
    it holds (a test fails when a model with a customer key is covered by no section)."""

    name: str
    title: str
    rows: ExportRows
    covers: tuple[str, ...]


_export_sections: dict[str, ExportSection] = {}


def register_export_section(
    name: str, *, title: str, rows: ExportRows, covers: Sequence[str]
) -> None:
    _export_sections[name] = ExportSection(name, title, rows, tuple(covers))


def export_sections() -> list[ExportSection]:
    """In registration order (the apps' order in ``INSTALLED_APPS``)."""
    return list(_export_sections.values())


@dataclass(frozen=True)
class CampaignChannel:
    """A campaign channel that is not a message to each person (e.g. ``social``: posts on
    the club's accounts), registered by the app that delivers it so ``marketing`` never
    imports that app. A campaign lists it in ``channels`` next to email/SMS.

    - ``validate(*, tenant, values, for_schedule) -> dict[str, list[str]]``: field errors
      for the campaign's values (``for_schedule``: about to be scheduled);
    - ``run(*, campaign, run, now) -> None``: called once per run, inside the transaction
      that snapshots the run's recipients (so it happens once, with the run);
    - ``stats(*, campaign) -> dict[str, int]``: counts shown with the campaign's stats.
    """

    validate: Callable[..., dict[str, list[str]]]
    run: Callable[..., None]
    stats: Callable[..., dict[str, int]]


_campaign_channels: dict[str, CampaignChannel] = {}


def register_campaign_channel(name: str, channel: CampaignChannel) -> None:
    _campaign_channels[name] = channel


def campaign_channels() -> dict[str, CampaignChannel]:
    return dict(_campaign_channels)


@dataclass(frozen=True)
class ProcessedEvent:
    """An event the pipeline has applied, as subscribers receive it."""

    event_id: str
    type: str
    source: str
    occurred_at: datetime
    payload: dict[str, Any]
    profile_id: Any | None  # None for events about no person (a competition published)
    is_new_profile: bool = False


#: ``subscriber(*, tenant, events: Sequence[ProcessedEvent]) -> None``: called once per
#: processed batch, after its transaction committed. Subscribers must be quick and
#: idempotent (enqueue their own tasks for real work); an exception is logged and does not
#: affect the pipeline or the other subscribers.
EventSubscriber = Callable[..., None]
_event_subscribers: dict[str, EventSubscriber] = {}


def register_event_subscriber(name: str, subscriber: EventSubscriber) -> None:
    _event_subscribers[name] = subscriber


def unregister_event_subscriber(name: str) -> None:
    _event_subscribers.pop(name, None)


def event_subscribers() -> dict[str, EventSubscriber]:
    return dict(_event_subscribers)


def publish_events(*, tenant: Any, events: Sequence[ProcessedEvent]) -> None:
    """Hand processed events to every subscriber."""
    if not events:
        return
    for name, subscriber in event_subscribers().items():
        try:
            subscriber(tenant=tenant, events=events)
        except Exception:
            logger.exception("event subscriber %s failed on %s events", name, len(events))


#: ``source(*, now) -> Iterable[prometheus_client.core.Metric]``: series computed from the
#: database or Redis each time ``/metrics`` is scraped (``crm.metrics``), so they read the
#: same whichever web process answers. A few indexed queries: scrapes come every 15-60 s.
MetricsSource = Callable[..., Iterable[Any]]
_metrics_sources: dict[str, MetricsSource] = {}


def register_metrics_source(name: str, source: MetricsSource) -> None:
    _metrics_sources[name] = source


def metrics_sources() -> dict[str, MetricsSource]:
    return dict(_metrics_sources)


#: ``step(*, now, deadline) -> tuple[int, bool]``: one part of the nightly retention job
#: (``crm.retention``): scrubs, rolls up or deletes the app's rows older than its period, in
#: batches, until done or ``deadline`` (a ``time.monotonic()`` value) passes; returns the rows
#: handled and whether it finished.
RetentionStep = Callable[..., tuple[int, bool]]
_retention_steps: dict[str, RetentionStep] = {}


def register_retention_step(name: str, step: RetentionStep) -> None:
    _retention_steps[name] = step


def retention_steps() -> dict[str, RetentionStep]:
    return dict(_retention_steps)


__all__ = [
    "CustomerPanel",
    "EraseHook",
    "EventSubscriber",
    "ExportRows",
    "ExportSection",
    "MergeHook",
    "MetricsSource",
    "ProcessedEvent",
    "RetentionStep",
    "customer_panels",
    "erase_hooks",
    "event_subscribers",
    "export_sections",
    "merge_hooks",
    "metrics_sources",
    "publish_events",
    "register_customer_panel",
    "register_erase_hook",
    "register_event_subscriber",
    "register_export_section",
    "register_merge_hook",
    "register_metrics_source",
    "register_retention_step",
    "retention_steps",
    "unregister_event_subscriber",
]
