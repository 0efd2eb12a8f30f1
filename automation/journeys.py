"""Journeys and their steps: validation, versions, and the state changes.

States: DRAFT -> ACTIVE <-> PAUSED; any -> ARCHIVED (final). Only an ACTIVE journey enrolls
people and advances them; a PAUSED one keeps its people where they are (their due times
pass, and they move on after ``journey_resume``); archiving exits everyone still in it.

Versions: the steps live on a ``JourneyVersion``. Saving steps of a journey whose current
version has enrollments creates a new version (people in flight finish on theirs); without
enrollments the current version's steps are replaced. Steps are validated on every save and
again on activation; errors are keyed by step: ``steps.<key>.<field>``.

Locks: state changes and step saves lock the journey row (``SELECT ... FOR UPDATE``), so two
editors never both create version N+1.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from crm.models import Club, Tenant
from customers.models import CHANNELS, LifecycleStage
from marketing.models import MessageTemplate, Segment, SegmentChange
from marketing.segments import criteria_parse

from .models import (
    Enrollment,
    Journey,
    JourneyStatus,
    JourneyVersion,
    Reentry,
    Step,
    StepType,
)
from .stats import stats_day, stats_insert_sql

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
EVENT_TYPE_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
DATE_TRIGGERS = ("birthday", "membership_anniversary", "renewal_upcoming", "since_last_round")
PAYLOAD_OPERATORS = ("eq", "neq", "in", "gt", "gte", "lt", "lte", "exists")
MAX_STEPS = 100
MAX_WAIT_DAYS = 366
# How many next keys each step type has (WAIT until an event: two, see ``_next_count``).
NEXT_COUNT = {
    StepType.SEND: 1,
    StepType.WAIT: 1,
    StepType.CONDITION: 2,
    StepType.UPDATE: 1,
    StepType.TASK: 1,
    StepType.END: 0,
}
UPDATE_KEYS = {"add_tags", "remove_tags", "lifecycle_stage"}


def journey_tz(journey: Journey) -> ZoneInfo:
    return ZoneInfo(journey.timezone or journey.tenant.timezone)


# ----------------------------------------------------------------------------- validation


class _Errors(dict):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)


def _criteria(tenant: Tenant, raw: Any, path: str, errors: _Errors) -> None:
    try:
        criteria_parse(tenant, raw)
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            for message in messages:
                errors.add(path + key.removeprefix("criteria"), message)


def _event_type(raw: Any, path: str, errors: _Errors) -> None:
    if not isinstance(raw, str) or not EVENT_TYPE_RE.match(raw):
        errors.add(path, "Expected a dotted event type such as teetime.round.completed.")


def _duration_minutes(raw: Any, path: str, errors: _Errors) -> int | None:
    """``{"days": 2, "hours": 3, "minutes": 0}`` -> minutes (at least one, at most a year)."""
    if not isinstance(raw, dict) or not raw or set(raw) - {"days", "hours", "minutes"}:
        errors.add(path, 'Expected e.g. {"days": 2, "hours": 6}.')
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in raw.values()):
        errors.add(path, "Days, hours and minutes are whole numbers, 0 or more.")
        return None
    minutes = raw.get("days", 0) * 1440 + raw.get("hours", 0) * 60 + raw.get("minutes", 0)
    if not 1 <= minutes <= MAX_WAIT_DAYS * 1440:
        errors.add(path, f"Between one minute and {MAX_WAIT_DAYS} days.")
        return None
    return minutes


def trigger_clean(tenant: Tenant, raw: Any) -> dict[str, Any]:
    """A journey's trigger: ``{"type": "event", "event_type": ..., "conditions": [{"field":
    "amount", "operator": "gte", "value": 100}]}``, ``{"type": "segment_entered" |
    "segment_left", "segment_id": ...}``, ``{"type": "date", "kind": "birthday" |
    "membership_anniversary" | "renewal_upcoming" | "since_last_round", "days": N}`` or
    ``{"type": "manual"}``."""
    errors = _Errors()
    if not isinstance(raw, dict) or raw.get("type") not in (
        "event",
        "segment_entered",
        "segment_left",
        "date",
        "manual",
    ):
        raise ValidationError(
            {"trigger.type": ["One of event, segment_entered, segment_left, date, manual."]}
        )
    kind = raw["type"]
    allowed = {
        "event": {"type", "event_type", "conditions"},
        "segment_entered": {"type", "segment_id"},
        "segment_left": {"type", "segment_id"},
        "date": {"type", "kind", "days"},
        "manual": {"type"},
    }[kind]
    for extra in sorted(set(raw) - allowed):
        errors.add(f"trigger.{extra}", "Not a setting of this trigger.")
    if kind == "event":
        _event_type(raw.get("event_type"), "trigger.event_type", errors)
        conditions = raw.get("conditions", [])
        if not isinstance(conditions, list) or len(conditions) > 20:
            errors.add("trigger.conditions", "Expected a list of at most 20 conditions.")
            conditions = []
        for i, condition in enumerate(conditions):
            path = f"trigger.conditions[{i}]"
            if not isinstance(condition, dict) or not isinstance(condition.get("field"), str):
                errors.add(path, 'Expected {"field": ..., "operator": ..., "value": ...}.')
            elif condition.get("operator") not in PAYLOAD_OPERATORS:
                errors.add(f"{path}.operator", f"One of {', '.join(PAYLOAD_OPERATORS)}.")
            elif condition["operator"] == "in" and not isinstance(condition.get("value"), list):
                errors.add(f"{path}.value", "Expected a list.")
    elif kind in ("segment_entered", "segment_left"):
        if not Segment.objects.for_tenant(tenant).filter(pk=_uuid(raw.get("segment_id"))).exists():
            errors.add("trigger.segment_id", "No such segment.")
    elif kind == "date":
        if raw.get("kind") not in DATE_TRIGGERS:
            errors.add("trigger.kind", f"One of {', '.join(DATE_TRIGGERS)}.")
        days = raw.get("days", 0)
        needs_days = raw.get("kind") in ("renewal_upcoming", "since_last_round")
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 3650:
            errors.add("trigger.days", "A whole number of days, 0 to 3650.")
        elif needs_days and days < 1:
            errors.add("trigger.days", "How many days (1 or more).")
    if errors:
        raise ValidationError(dict(errors))
    return raw


def _uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _event_or_criteria(tenant: Tenant, raw: Any, name: str, errors: _Errors) -> None:
    """A goal or the exit criteria: ``{}`` (none), ``{"event_type": ...}`` and/or
    ``{"criteria": {...}}``."""
    if raw in (None, {}):
        return
    if not isinstance(raw, dict) or not raw or set(raw) - {"event_type", "criteria"}:
        errors.add(name, 'Expected {"event_type": ...} and/or {"criteria": {...}}.')
        return
    if "event_type" in raw:
        _event_type(raw["event_type"], f"{name}.event_type", errors)
    if "criteria" in raw:
        _criteria(tenant, raw["criteria"], f"{name}.criteria", errors)


def steps_validate(tenant: Tenant, steps: Any) -> list[dict[str, Any]]:
    """Validate a step graph (a list of ``{"key", "type", "name", "config", "next"}``, the
    first one is the entry): each step's config, that every step is reachable from the entry,
    every path reaches an END, no loop goes round without a WAIT, and each SEND's template is
    of its channel. Raises ``ValidationError`` keyed ``steps.<key>.<field>``."""
    errors = _Errors()
    if not isinstance(steps, list) or not steps:
        raise ValidationError({"steps": ["Add at least one step."]})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": [f"At most {MAX_STEPS} steps."]})
    by_key: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(steps):
        if not isinstance(raw, dict):
            errors.add(f"steps[{i}]", "Expected an object.")
            continue
        key = raw.get("key")
        if not isinstance(key, str) or not KEY_RE.match(key):
            errors.add(f"steps[{i}].key", "Lower-case letters, digits, - and _ (at most 40).")
            continue
        if key in by_key:
            errors.add(f"steps.{key}.key", "Two steps have this key.")
            continue
        by_key[key] = raw
    if errors:
        raise ValidationError(dict(errors))
    templates = _templates(tenant, by_key.values())
    for key, raw in by_key.items():
        _step_validate(tenant, key, raw, by_key, templates, errors)
    if not errors:
        _graph_validate(steps[0]["key"], by_key, errors)
    if errors:
        raise ValidationError(dict(errors))
    return [
        {
            "key": raw["key"],
            "type": raw["type"],
            "name": str(raw.get("name") or "")[:120],
            "config": raw.get("config") or {},
            "next": list(raw.get("next") or []),
        }
        for raw in steps
    ]


def _templates(tenant: Tenant, steps: Iterable[dict[str, Any]]) -> dict[str, str]:
    ids = {
        _uuid((raw.get("config") or {}).get("template_id"))
        for raw in steps
        if raw.get("type") == StepType.SEND and isinstance(raw.get("config"), dict)
    } - {None}
    return {
        str(pk): channel
        for pk, channel in MessageTemplate.objects.for_tenant(tenant)
        .filter(pk__in=ids)
        .values_list("pk", "channel")
    }


def _step_validate(tenant, key, raw, by_key, templates, errors: _Errors) -> None:
    path = f"steps.{key}"
    kind = raw.get("type")
    if kind not in StepType.values:
        errors.add(f"{path}.type", f"One of {', '.join(StepType.values)}.")
        return
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        errors.add(f"{path}.config", "Expected an object.")
        return
    nxt = raw.get("next") or []
    if not isinstance(nxt, list) or not all(isinstance(k, str) for k in nxt):
        errors.add(f"{path}.next", "Expected a list of step keys.")
        return
    for target in nxt:
        if target not in by_key:
            errors.add(f"{path}.next", f"No step has the key {target!r}.")
    if kind == StepType.SEND:
        channel = config.get("channel")
        if channel not in CHANNELS:
            errors.add(f"{path}.config.channel", f"One of {', '.join(CHANNELS)}.")
        template_channel = templates.get(_uuid(config.get("template_id")) or "")
        if template_channel is None:
            errors.add(f"{path}.config.template_id", "No such template.")
        elif channel in CHANNELS and template_channel != channel:
            errors.add(
                f"{path}.config.template_id",
                f"The template is for {template_channel}, not {channel}.",
            )
    elif kind == StepType.WAIT:
        modes = [m for m in ("duration", "until", "event_type") if m in config]
        if len(modes) != 1:
            errors.add(f"{path}.config", "Wait for a duration, until a time, or for an event.")
        elif modes[0] == "duration":
            _duration_minutes(config["duration"], f"{path}.config.duration", errors)
        elif modes[0] == "until":
            _until_validate(config["until"], f"{path}.config.until", errors)
        else:
            _event_type(config["event_type"], f"{path}.config.event_type", errors)
            _duration_minutes(config.get("timeout"), f"{path}.config.timeout", errors)
    elif kind == StepType.CONDITION:
        modes = [m for m in ("criteria", "event_type", "opened", "clicked") if m in config]
        if len(modes) != 1:
            errors.add(
                f"{path}.config",
                "One of criteria, event_type (since entering), opened or clicked (a SEND step).",
            )
        elif modes[0] == "criteria":
            _criteria(tenant, config["criteria"], f"{path}.config.criteria", errors)
        elif modes[0] == "event_type":
            _event_type(config["event_type"], f"{path}.config.event_type", errors)
        else:
            target = by_key.get(config[modes[0]])
            if target is None or target.get("type") != StepType.SEND:
                errors.add(f"{path}.config.{modes[0]}", "Name a SEND step of this journey.")
    elif kind == StepType.SPLIT:
        weights = config.get("weights")
        if (
            not isinstance(weights, list)
            or not 2 <= len(weights) <= 4
            or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in weights)
        ):
            errors.add(f"{path}.config.weights", "Two to four positive whole-number weights.")
        elif len(nxt) != len(weights):
            errors.add(f"{path}.next", "One next step per branch.")
        return
    elif kind == StepType.UPDATE:
        unknown = set(config) - UPDATE_KEYS
        if unknown:
            errors.add(
                f"{path}.config",
                f"Only {', '.join(sorted(UPDATE_KEYS))} (consent is never changed by a journey).",
            )
        for name in ("add_tags", "remove_tags"):
            tags = config.get(name, [])
            if not isinstance(tags, list) or not all(
                isinstance(t, str) and 0 < len(t) <= 64 for t in tags
            ):
                errors.add(f"{path}.config.{name}", "A list of tags (at most 64 characters).")
        stage = config.get("lifecycle_stage")
        if stage is not None and stage not in LifecycleStage.values:
            errors.add(
                f"{path}.config.lifecycle_stage", f"One of {', '.join(LifecycleStage.values)}."
            )
        if not any(config.get(name) for name in UPDATE_KEYS):
            errors.add(f"{path}.config", "Nothing to update.")
    elif kind == StepType.TASK:
        body = config.get("body")
        if not isinstance(body, str) or not body.strip() or len(body) > 2000:
            errors.add(f"{path}.config.body", "What staff should do (at most 2000 characters).")
    expected = _next_count(kind, config)
    if len(nxt) != expected:
        errors.add(f"{path}.next", f"A {kind} step has {expected} next step(s).")


def _next_count(kind: str, config: dict[str, Any]) -> int:
    if kind == StepType.WAIT and "event_type" in config:
        return 2  # [the event happened, timed out]
    return NEXT_COUNT[kind]


def _until_validate(raw: Any, path: str, errors: _Errors) -> None:
    """``{"weekdays": [0, 2], "time": "09:30"}`` (0 = Monday; no weekdays: any day)."""
    if not isinstance(raw, dict) or set(raw) - {"weekdays", "time"}:
        errors.add(path, 'Expected {"weekdays": [0-6], "time": "HH:MM"}.')
        return
    days = raw.get("weekdays", [])
    if not isinstance(days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days
    ):
        errors.add(f"{path}.weekdays", "Days 0 (Monday) to 6 (Sunday).")
    if not isinstance(raw.get("time"), str) or not re.match(
        r"^([01]\d|2[0-3]):[0-5]\d$", raw["time"]
    ):
        errors.add(f"{path}.time", "A time of day, HH:MM.")


def _graph_validate(entry: str, by_key: dict[str, dict[str, Any]], errors: _Errors) -> None:
    edges = {key: list(raw.get("next") or []) for key, raw in by_key.items()}
    reachable: set[str] = set()
    stack = [entry]
    while stack:
        key = stack.pop()
        if key not in reachable:
            reachable.add(key)
            stack.extend(edges[key])
    for key in by_key:
        if key not in reachable:
            errors.add(f"steps.{key}", "No path leads to this step from the first one.")
    # Every step must be able to reach an END (otherwise a path never ends).
    ends = {key for key, raw in by_key.items() if raw["type"] == StepType.END}
    can_end = set(ends)
    changed = True
    while changed:
        changed = False
        for key, targets in edges.items():
            if key not in can_end and any(t in can_end for t in targets):
                can_end.add(key)
                changed = True
    for key in by_key:
        if key in reachable and key not in can_end:
            errors.add(f"steps.{key}", "No path from this step reaches an END step.")
    # A loop must contain a WAIT: without one, the engine would spin.
    instant = {k for k, raw in by_key.items() if raw["type"] != StepType.WAIT}
    state: dict[str, int] = {}

    def visit(key: str, trail: list[str]) -> None:
        state[key] = 1
        for target in edges[key]:
            if target not in instant:
                continue
            if state.get(target) == 1:
                errors.add(f"steps.{target}", "This loop has no WAIT step.")
            elif target not in state:
                visit(target, trail)
        state[key] = 2

    for key in sorted(instant):
        if key not in state:
            visit(key, [])


def journey_settings_clean(tenant: Tenant, data: dict[str, Any], journey: Journey | None) -> dict:
    """Validate journey settings (all of them on create, the given ones on update); raises
    ``ValidationError`` keyed by field (``trigger.event_type``, ``entry_criteria.rules[0]``)."""
    errors = _Errors()
    clean: dict[str, Any] = {}
    if "name" in data or journey is None:
        name = str(data.get("name") or "").strip()
        if not name or len(name) > 150:
            errors.add("name", "A name of at most 150 characters.")
        elif (
            Journey.objects.for_tenant(tenant)
            .filter(name=name)
            .exclude(pk=journey.pk if journey else None)
            .exists()
        ):
            errors.add("name", "Another journey has this name.")
        clean["name"] = name
    if "description" in data:
        clean["description"] = str(data["description"] or "")
    if "club" in data or "club_id" in data:
        club_id = data.get("club_id", data.get("club"))
        if club_id in (None, ""):
            clean["club"] = None
        else:
            club = Club.objects.filter(tenant=tenant, pk=_uuid(club_id)).first()
            if club is None:
                errors.add("club", "No such club.")
            clean["club"] = club
    if "timezone" in data:
        tz = str(data["timezone"] or "")
        try:
            if tz:
                ZoneInfo(tz)
            clean["timezone"] = tz
        except (ZoneInfoNotFoundError, ValueError):
            errors.add("timezone", "An IANA timezone such as Europe/London.")
    if "trigger" in data:
        try:
            clean["trigger"] = trigger_clean(tenant, data["trigger"])
        except ValidationError as exc:
            for k, v in exc.message_dict.items():
                for message in v:
                    errors.add(k, message)
    if "entry_criteria" in data:
        raw = data["entry_criteria"] or {}
        if raw:
            _criteria(tenant, raw, "entry_criteria", errors)
        clean["entry_criteria"] = raw
    for name in ("goal", "exit_criteria"):
        if name in data:
            _event_or_criteria(tenant, data[name], name, errors)
            clean[name] = data[name] or {}
    if "reentry" in data:
        if data["reentry"] not in Reentry.values:
            errors.add("reentry", f"One of {', '.join(Reentry.values)}.")
        clean["reentry"] = data["reentry"]
    if "reentry_days" in data:
        days = data["reentry_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 3650:
            errors.add("reentry_days", "A whole number of days, 0 to 3650.")
        clean["reentry_days"] = days
    reentry = clean.get("reentry", journey.reentry if journey else Reentry.NEVER)
    days = clean.get("reentry_days", journey.reentry_days if journey else 0)
    if reentry == Reentry.AFTER_DAYS and not days and "reentry_days" not in errors:
        errors.add("reentry_days", "After how many days (1 or more).")
    if "holdout_percent" in data:
        pct = data["holdout_percent"]
        if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 50:
            errors.add("holdout_percent", "A whole percentage, 0 to 50.")
        clean["holdout_percent"] = pct
    if errors:
        raise ValidationError(dict(errors))
    return clean


# ----------------------------------------------------------------------------- services


def journey_create(
    *, tenant: Tenant, data: dict[str, Any], steps: list[dict] | None = None
) -> Journey:
    """A DRAFT journey (with its first version when ``steps`` are given)."""
    clean = journey_settings_clean(tenant, data, None)
    with transaction.atomic():
        journey = Journey.objects.create(tenant=tenant, **clean)
        if steps is not None:
            journey_steps_save(journey=journey, steps=steps)
    return journey


def journey_update(*, journey: Journey, data: dict[str, Any]) -> Journey:
    """Change the settings (not the steps). An archived journey cannot change."""
    if journey.status == JourneyStatus.ARCHIVED:
        raise ValidationError({"status": ["An archived journey cannot change."]})
    clean = journey_settings_clean(journey.tenant, data, journey)
    if journey.status == JourneyStatus.ACTIVE and "trigger" in clean and not clean["trigger"]:
        raise ValidationError({"trigger": ["An active journey needs a trigger."]})
    for name, value in clean.items():
        setattr(journey, name, value)
    journey.save()
    return journey


def journey_steps_save(*, journey: Journey, steps: Any) -> JourneyVersion:
    """Validate and save the step graph. A new version when people are on the current one;
    otherwise the current version's steps are replaced."""
    tenant = journey.tenant
    clean = steps_validate(tenant, steps)
    with transaction.atomic():
        locked = Journey.objects.select_for_update().get(pk=journey.pk)
        if locked.status == JourneyStatus.ARCHIVED:
            raise ValidationError({"status": ["An archived journey cannot change."]})
        version = locked.current_version
        if version is None or Enrollment.objects.filter(version=version).exists():
            number = (version.number + 1) if version else 1
            version = JourneyVersion.objects.create(
                tenant=tenant, journey=locked, number=number, entry_key=clean[0]["key"]
            )
            locked.current_version = version
            locked.save(update_fields=["current_version", "updated_at"])
        else:
            version.steps.all().delete()
            version.entry_key = clean[0]["key"]
            version.save(update_fields=["entry_key", "updated_at"])
        Step.objects.bulk_create(
            [
                Step(
                    tenant=tenant,
                    version=version,
                    key=raw["key"],
                    position=i,
                    type=raw["type"],
                    name=raw["name"],
                    config=raw["config"],
                    next_keys=raw["next"],
                )
                for i, raw in enumerate(clean)
            ]
        )
    journey.current_version = version
    return version


def version_steps(version: JourneyVersion) -> list[dict[str, Any]]:
    return [
        {"key": s.key, "type": s.type, "name": s.name, "config": s.config, "next": s.next_keys}
        for s in version.steps.order_by("position")
    ]


def journey_validate(*, journey: Journey) -> None:
    """What activation requires: a trigger and a valid step graph (validated again: a
    template may have changed since the steps were saved)."""
    errors = _Errors()
    if not journey.trigger:
        errors.add("trigger", "Choose what brings people into the journey.")
    if journey.current_version is None:
        errors.add("steps", "Add at least one step.")
    else:
        try:
            steps_validate(journey.tenant, version_steps(journey.current_version))
        except ValidationError as exc:
            for k, v in exc.message_dict.items():
                for message in v:
                    errors.add(k, message)
    if errors:
        raise ValidationError(dict(errors))


_ARCHIVED = """
    SELECT tenant_id, journey_id, '' AS step_key, 'ACTIVE' AS outcome, holdout,
           -count(*) AS visits, 0 AS people
    FROM ended GROUP BY 1, 2, 5
    UNION ALL
    SELECT tenant_id, journey_id, '', 'EXITED:archived', holdout, count(*), 0 FROM ended
    GROUP BY 1, 2, 5
"""

_EXIT_EVERYONE_SQL = f"""
    WITH ended AS (
        UPDATE "{Enrollment._meta.db_table}" SET status = 'EXITED', exit_reason = 'archived',
               ended_at = %(now)s, due_at = NULL, updated_at = %(now)s
        WHERE tenant_id = %(tenant)s AND journey_id = %(journey)s AND status = 'ACTIVE'
        RETURNING tenant_id, journey_id, holdout
    )
    {stats_insert_sql(_ARCHIVED)}
"""  # noqa: S608


def _exit_everyone(journey: Journey, now: datetime) -> None:
    """Archiving: everyone still in the journey is EXITED (``archived``), counted in the
    journey's figures (``automation.stats``) in the same statement."""
    params = {"tenant": journey.tenant_id, "journey": journey.pk, "now": now}
    with connection.cursor() as cursor:
        cursor.execute(_EXIT_EVERYONE_SQL, {**params, "day": stats_day(now)})


def _transition(journey: Journey, allowed: tuple[str, ...], to: str, now: datetime) -> Journey:
    with transaction.atomic():
        locked = Journey.objects.select_for_update().select_related("tenant").get(pk=journey.pk)
        if locked.status not in allowed:
            raise ValidationError(
                {"status": [f"A {locked.status.lower()} journey cannot become {to.lower()}."]}
            )
        if to == JourneyStatus.ACTIVE:
            journey_validate(journey=locked)
            if locked.activated_at is None:
                locked.activated_at = now
            if str(locked.trigger.get("type", "")).startswith("segment_") and not (
                locked.trigger_cursor
            ):
                # Segment triggers react to changes from now on, not to the whole history.
                last = SegmentChange.objects.for_tenant(locked.tenant).aggregate(m=Max("id"))["m"]
                locked.trigger_cursor = last or 0
        if to == JourneyStatus.ARCHIVED:
            _exit_everyone(locked, now)
        locked.status = to
        locked.save(update_fields=["status", "activated_at", "trigger_cursor", "updated_at"])
    return locked


def journey_activate(*, journey: Journey, now: datetime | None = None) -> Journey:
    return _transition(journey, (JourneyStatus.DRAFT,), JourneyStatus.ACTIVE, now or timezone.now())


def journey_pause(*, journey: Journey, now: datetime | None = None) -> Journey:
    return _transition(
        journey, (JourneyStatus.ACTIVE,), JourneyStatus.PAUSED, now or timezone.now()
    )


def journey_resume(*, journey: Journey, now: datetime | None = None) -> Journey:
    return _transition(
        journey, (JourneyStatus.PAUSED,), JourneyStatus.ACTIVE, now or timezone.now()
    )


def journey_archive(*, journey: Journey, now: datetime | None = None) -> Journey:
    return _transition(
        journey,
        (JourneyStatus.DRAFT, JourneyStatus.ACTIVE, JourneyStatus.PAUSED),
        JourneyStatus.ARCHIVED,
        now or timezone.now(),
    )
