"""The catalog, its documentation, and the queue way in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from customers.events import CATALOG, Category, event_type
from customers.models import SyncLogEntry
from customers.tasks import ingest_events

from .helpers import event

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `([\w.]+)` \|(.*)\|$", line)
        if match and match.group(1) in CATALOG:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_catalog_type_is_documented_with_its_source_category_and_fields():
    rows = _doc_rows()
    assert set(rows) == set(CATALOG)
    for name, spec in CATALOG.items():
        source, category, person, payload, _ = rows[name]
        assert source == spec.source, name
        assert category == spec.category, name
        assert person.startswith("yes" if spec.person else "**no**"), name
        for field_name, field in spec.payload().fields.items():
            documented = f"**`{field_name}`**" if field.required else f"`{field_name}`"
            assert documented in payload or f"`{field_name}`" in payload, (name, field_name)
            if field.required:
                assert f"**`{field_name}`**" in payload, (name, field_name)


def test_the_issue_s_types_are_all_in_the_catalog():
    wanted = {
        "scl.member.created",
        "scl.member.updated",
        "scl.member.renewed",
        "scl.member.lapsed",
        "teetime.booking.created",
        "teetime.booking.cancelled",
        "teetime.booking.paid",
        "teetime.round.completed",
        "teetime.handicap.updated",
        "teetime.competition.published",
        "teetime.competition.entered",
        "contactPreference.updated",
        "auth.user.registered",
    }
    assert wanted <= set(CATALOG)
    categories = {value for value, _ in Category.CHOICES}
    assert {spec.category for spec in CATALOG.values()} <= categories


def test_unknown_types_get_a_generic_entry():
    spec = event_type("pos.purchase.completed")
    assert (spec.source, spec.category, spec.person) == ("pos", "system", True)
    assert spec.title({}) == "pos.purchase.completed"


@pytest.mark.django_db
def test_the_celery_task_writes_the_sync_log_first(tenant_a, tenant_b, caplog):
    result = ingest_events(
        [
            event(
                tenant_a,
                "teetime.round.completed",
                {"email": "q@example.com"},
                {"roundId": "Q1"},
                id="q-1",
            ),
            event(
                tenant_b,
                "teetime.round.completed",
                {"email": "q@example.com"},
                {"roundId": "Q1"},
                id="q-1",
            ),
            {
                **event(tenant_a, "teetime.round.completed", {"email": "q@example.com"}, {}),
                "id": "q-bad",
            },
            {"id": "lost", "type": "x.y", "tenantId": "no-such-tenant"},
        ]
    )
    assert result == {"accepted": 2, "duplicates": 0, "rejected": 2}
    rows = SyncLogEntry.objects.order_by("tenant__slug")
    assert [(r.tenant.slug, r.event_id, r.via) for r in rows] == [
        ("links-a", "q-1", "queue"),
        ("parkland-b", "q-1", "queue"),
    ]
    assert "q-bad" in caplog.text and "no-such-tenant" in caplog.text
    # One event on its own works too, and a replay is a duplicate.
    again = ingest_events(
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "q@example.com"},
            {"roundId": "Q1"},
            id="q-1",
        )
    )
    assert again == {"accepted": 0, "duplicates": 1, "rejected": 0}
