"""Writes of the customers app: identity resolution, profile updates, merges.

Lock order (see docs/customers.md): when a transaction locks several profiles it locks them
in ascending id order, so two merges of the same pair cannot deadlock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Func, JSONField, Q, Value
from django.db.models.functions import Coalesce
from django.forms.models import model_to_dict
from django.utils import timezone

from crm.audit import AuditAction, audit_record
from crm.db import hot_cursor
from crm.models import Tenant
from crm.registry import merge_hooks

from .identity import CONFIDENCE, HINT_KINDS, IdentityHints
from .models import (
    CHANNELS,
    IDENTITY_FIELDS,
    LIVE_STATUSES,
    MEMBERSHIP_FIELDS,
    CustomerProfile,
    IdentityAlias,
    MergeSuggestion,
    ProfileMerge,
    ProfileStatus,
    SuggestionStatus,
)

CREATE_ATTEMPTS = 3


class ProfileConflict(ValidationError):
    """An identifier belongs to another profile (answered as 409 by the API)."""

    status_code = 409


class MergeError(ValidationError):
    """A merge that cannot be done (same profile, already merged, ...)."""


class ProfileNotLive(ValidationError):
    """A write to a merged, erased or deleted profile (answered as 409 by the API; the API's
    detail routes already answer 404 before a write gets here)."""

    status_code = 409


def profile_lock_live(*, tenant: Tenant, profile_id: Any) -> CustomerProfile:
    """Lock a live profile for a write (``select_for_update``, inside the caller's
    transaction). Erasure and merges take the same lock, so a write cannot slip in between
    their check and their change."""
    profile = (
        CustomerProfile.objects.for_tenant(tenant)
        .live()
        .select_for_update()
        .filter(pk=profile_id)
        .first()
    )
    if profile is None:
        raise ProfileNotLive({"customer": ["This customer is merged or erased."]})
    return profile


class Resolution:
    """What ``identity_resolve`` found or created.

    A known person found by the lookup alone (the common case) comes with ``values``, the
    profile's columns by attribute name exactly as loaded, and no model instance: the API
    renders its answer from them (building the instance cost more than the rendering).
    ``profile`` builds the instance from them on first use; a profile created or changed by
    the resolve is the instance itself (``values`` None)."""

    __slots__ = ("_profile", "confidence", "is_new", "matched_by", "suggestions", "values")

    def __init__(
        self,
        profile: CustomerProfile | None,
        is_new: bool,
        matched_by: list[str] | None = None,
        confidence: int = 0,
        suggestions: list[str] | None = None,
        *,
        values: dict[str, Any] | None = None,
    ) -> None:
        self._profile = profile
        self.is_new = is_new
        self.matched_by = matched_by if matched_by is not None else []
        self.confidence = confidence
        self.suggestions = suggestions if suggestions is not None else []
        self.values = values

    @property
    def profile(self) -> CustomerProfile | None:
        if self._profile is None and self.values is not None:
            self._profile = _profile_of(self.values)
        return self._profile

    def __repr__(self) -> str:
        return (
            f"Resolution(profile={self.profile!r}, is_new={self.is_new!r}, "
            f"matched_by={self.matched_by!r}, confidence={self.confidence!r}, "
            f"suggestions={self.suggestions!r})"
        )


_PROFILE_FIELDS = CustomerProfile._meta.concrete_fields
_PROFILE_ATTNAMES = [f.attname for f in _PROFILE_FIELDS]
_PROFILE_CONVERTERS = [(i, f) for i, f in enumerate(_PROFILE_FIELDS) if hasattr(f, "from_db_value")]


def _profile_of(values: dict[str, Any]) -> CustomerProfile:
    """The model instance of a profile's loaded columns (as ``Model.from_db`` builds it)."""
    return CustomerProfile.from_db(
        connection.alias, _PROFILE_ATTNAMES, [values[name] for name in _PROFILE_ATTNAMES]
    )


_LIVE_SQL = ", ".join(f"'{status}'" for status in LIVE_STATUSES)


@lru_cache(maxsize=16)
def _alias_sql(pairs: int) -> str:
    alias, profile = IdentityAlias._meta.db_table, CustomerProfile._meta.db_table
    columns = ", ".join(f'p."{f.column}"' for f in _PROFILE_FIELDS)
    wanted = ", ".join(["(%s, %s)"] * pairs)
    # Hand-written: this is the hottest query of the platform and the ORM's compile step
    # cost more than PostgreSQL's work. The unique (tenant, kind, value) index serves it.
    return (
        f'SELECT a."kind", a."value", a."profile_id", {columns} '  # noqa: S608
        f'FROM "{alias}" a JOIN "{profile}" p ON p."id" = a."profile_id" '
        f'WHERE a."tenant_id" = %s AND (a."kind", a."value") IN ({wanted}) '
        # Only live profiles resolve (the SQL form of CustomerProfileQuerySet.live()).
        f'AND p."status" IN ({_LIVE_SQL}) AND p."deleted_at" IS NULL'
    )


@dataclass(frozen=True)
class _Match:
    kind: str
    value: str
    profile_id: Any
    values: dict[str, Any]  # the profile's columns by attribute name, converted


def _alias_rows(tenant: Tenant, hints: IdentityHints) -> list[tuple[str, _Match]]:
    """Every alias the hints name, with its profile's columns, in one query."""
    pairs = hints.pairs()
    params: list[Any] = [tenant.pk]
    for _, kind, value in pairs:
        params += [kind, value]
    # Prepared once per connection (crm.db.hot_cursor): planning it cost PostgreSQL several
    # times its execution.
    with hot_cursor() as cursor:
        cursor.execute(_alias_sql(len(pairs)), params)
        rows = cursor.fetchall()
    found: dict[tuple[str, str], _Match] = {}
    profiles: dict[Any, dict[str, Any]] = {}
    for kind, value, profile_id, *values in rows:
        if profile_id not in profiles:
            # As Model.from_db gets them: each field's from_db_value applied.
            for index, field in _PROFILE_CONVERTERS:
                values[index] = field.from_db_value(values[index], None, connection)
            profiles[profile_id] = dict(zip(_PROFILE_ATTNAMES, values, strict=True))
        found[(kind, value)] = _Match(kind, value, profile_id, profiles[profile_id])
    return [(name, found[(kind, value)]) for name, kind, value in pairs if (kind, value) in found]


def _choose(matches: list[tuple[str, _Match]]) -> tuple[dict[str, Any], list[str], int]:
    """The profile with the strongest evidence: highest confidence, then most hints, then the
    oldest profile. Returns its columns (``_Match.values``)."""
    by_profile: dict[Any, list[tuple[str, _Match]]] = {}
    for name, alias in matches:
        by_profile.setdefault(alias.profile_id, []).append((name, alias))

    def strength(items):
        return (
            max(CONFIDENCE[a.kind] for _, a in items),
            len(items),
            -items[0][1].values["created_at"].timestamp(),
        )

    best = max(by_profile.values(), key=strength)
    names = sorted({name for name, _ in best})
    return best[0][1].values, names, max(CONFIDENCE[a.kind] for _, a in best)


def profile_fields_from_hints(hints: IdentityHints) -> dict[str, Any]:
    values = {name: getattr(hints, name) for name in HINT_KINDS if getattr(hints, name)}
    if hints.external_ids:
        values["external_ids"] = dict(hints.external_ids)
    return values


def _new_aliases(
    tenant: Tenant, profile: CustomerProfile, hints: IdentityHints, known: set, source: str
) -> list[IdentityAlias]:
    return [
        IdentityAlias(tenant=tenant, kind=kind, value=value, profile=profile, source=source)
        for _, kind, value in hints.pairs()
        if (kind, value) not in known
    ]


def _attach(
    tenant: Tenant, profile: CustomerProfile, hints: IdentityHints, known: set, source: str
) -> None:
    """Attach identifiers the profile did not have yet; fill its blank identity columns."""
    new = _new_aliases(tenant, profile, hints, known, source)
    if not new:
        return
    # A concurrent resolve may attach the same identifier elsewhere first; it keeps it.
    IdentityAlias.objects.bulk_create(new, ignore_conflicts=True)
    new_names = {a.kind for a in new}
    updates: dict[str, Any] = {}
    for name, kind in HINT_KINDS.items():
        value = getattr(hints, name)
        if value and kind in new_names:
            updates[name] = Coalesce(F(name), Value(value))
    if hints.external_ids:
        # Existing ids win: new || existing (the right side of jsonb || wins).
        updates["external_ids"] = Func(
            Value(hints.external_ids, output_field=JSONField()),
            F("external_ids"),
            template="(%(expressions)s)",
            arg_joiner=" || ",
            output_field=JSONField(),
        )
    if updates:
        updates["updated_at"] = timezone.now()
        CustomerProfile.objects.filter(pk=profile.pk).update(**updates)
        profile.refresh_from_db()


def _suggest(
    tenant: Tenant, chosen: CustomerProfile, matches, hints: IdentityHints, source: str
) -> list[str]:
    others: dict[Any, list[str]] = {}
    for name, alias in matches:
        if alias.profile_id != chosen.pk:
            others.setdefault(alias.profile_id, []).append(name)
    suggestions = []
    for other_id, names in others.items():
        first, second = sorted([chosen.pk, other_id], key=str)
        suggestions.append(
            MergeSuggestion(
                tenant=tenant,
                profile_id=first,
                candidate_id=second,
                reason=f"Hints from {source or 'a resolve'} tie these profiles by "
                + ", ".join(sorted(set(names))),
                evidence={"hints": {n: v for n, _, v in hints.pairs()}, "chosen": str(chosen.pk)},
            )
        )
    MergeSuggestion.objects.bulk_create(suggestions, ignore_conflicts=True)
    return [str(other) for other in others]


def identity_resolve(
    *, tenant: Tenant, hints: IdentityHints, create: bool = True, source: str = ""
) -> Resolution:
    """Find the person the hints describe, or create them.

    All hints are looked up in one query. New identifiers are attached to the matched
    profile. Hints that point at two profiles pick the strongest match and record a merge
    suggestion rather than guessing silently. Two concurrent resolves of the same new person
    create one profile: the alias unique key makes the second insert fail, and it retries
    and finds the first.
    """
    if hints.is_empty():
        raise ValidationError({"non_field_errors": ["Give at least one identifier."]})
    for _attempt in range(CREATE_ATTEMPTS):
        matches = _alias_rows(tenant, hints)
        if matches:
            values, matched_by, confidence = _choose(matches)
            chosen = values["id"]
            known = {(a.kind, a.value) for _, a in matches}
            conflicting = any(alias.profile_id != chosen for _, alias in matches)
            # The common case (a known person, nothing new) is one query and no transaction,
            # and no model instance (``Resolution.values``).
            if not conflicting and len(known) == len(hints.pairs()):
                return Resolution(None, False, matched_by, confidence, values=values)
            profile = _profile_of(values)
            with transaction.atomic():
                _attach(tenant, profile, hints, known, source)
                suggestions = _suggest(tenant, profile, matches, hints, source)
            return Resolution(profile, False, matched_by, confidence, suggestions)
        if not create:
            return Resolution(None, False)
        try:
            with transaction.atomic():
                profile = CustomerProfile.objects.create(
                    tenant=tenant, currency=tenant.currency, **profile_fields_from_hints(hints)
                )
                IdentityAlias.objects.bulk_create(
                    _new_aliases(tenant, profile, hints, set(), source)
                )
            return Resolution(profile, True, [], 100)
        except IntegrityError:
            continue  # someone else just created this person: look again
    raise RuntimeError("identity_resolve kept colliding; giving up")  # pragma: no cover


def profile_update(
    *, tenant: Tenant, profile: CustomerProfile, data: dict[str, Any]
) -> CustomerProfile:
    """Update a profile. Identity fields become aliases (old values keep resolving); an
    identifier owned by another profile raises ``ProfileConflict`` and nothing changes."""
    identity = {k: v for k, v in data.items() if k in IDENTITY_FIELDS and v}
    with transaction.atomic():
        profile = profile_lock_live(tenant=tenant, profile_id=profile.pk)
        if identity:
            hints = IdentityHints(**identity)
            owners = _alias_rows(tenant, hints)
            conflicts = {
                name: [f"Already belongs to customer {alias.profile_id}."]
                for name, alias in owners
                if alias.profile_id != profile.pk
            }
            if conflicts:
                raise ProfileConflict(conflicts)
            known = {(a.kind, a.value) for _, a in owners}
            IdentityAlias.objects.bulk_create(
                _new_aliases(tenant, profile, hints, known, "profile_update"), ignore_conflicts=True
            )
        for name, value in data.items():
            setattr(profile, name, value)
        profile.save()
    return profile


def _snapshot(profile: CustomerProfile) -> dict:
    data = model_to_dict(profile)
    data["id"] = str(profile.pk)
    data["aliases"] = list(
        IdentityAlias.objects.filter(profile=profile).values_list("kind", "value")
    )
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


# Blank fields of the winner that a merge fills from the loser.
FILL_FIELDS = (
    *IDENTITY_FIELDS,
    "first_name",
    "last_name",
    "date_of_birth",
    "home_club_id",
    *MEMBERSHIP_FIELDS,
    "engagement_score",
    "engagement_scored_at",
    "churn_risk",
    "churn_scored_at",
    "last_activity_type",
)


def _merge_consent(winner: CustomerProfile, loser: CustomerProfile) -> None:
    """Per channel the most recent recorded decision wins; at the same instant an opt-out
    holds. A merge therefore never turns a recorded opt-out into an opt-in unless the person
    opted in later."""
    for channel in CHANNELS:
        loser_at = getattr(loser, f"{channel}_consent_at")
        winner_at = getattr(winner, f"{channel}_consent_at")
        if loser_at is None:
            continue  # the loser never decided: the winner keeps its own state
        newer = winner_at is None or loser_at > winner_at
        tie_opt_out = loser_at == winner_at and not getattr(loser, f"{channel}_opt_in")
        if newer or tie_opt_out:
            for suffix in ("opt_in", "consent_at", "consent_source"):
                setattr(winner, f"{channel}_{suffix}", getattr(loser, f"{channel}_{suffix}"))


def profile_merge(
    *,
    tenant: Tenant,
    winner: CustomerProfile,
    loser: CustomerProfile,
    actor: str,
    reason: str = "",
    ip: str | None = None,
) -> ProfileMerge:
    """Merge ``loser`` into ``winner``: aliases and every related row move set-wise, blanks
    are filled, consent is reconciled, the loser becomes MERGED, an audit row is kept."""
    if winner.pk == loser.pk:
        raise MergeError({"loser_id": ["A profile cannot be merged into itself."]})
    with transaction.atomic():
        locked = {
            p.pk: p
            for p in CustomerProfile.objects.for_tenant(tenant)
            .filter(pk__in=[winner.pk, loser.pk])
            .order_by("pk")
            .select_for_update()
        }
        if len(locked) != 2:
            raise MergeError({"loser_id": ["Both profiles must belong to this tenant."]})
        winner, loser = locked[winner.pk], locked[loser.pk]
        for label, profile in (("winner", winner), ("loser_id", loser)):
            if not profile.is_live:
                live_status = profile.status in LIVE_STATUSES
                state = "deleted" if live_status else profile.status.lower()
                raise MergeError({label: [f"This profile is {state}."]})
        snapshot = _snapshot(loser)
        moved = {
            "aliases": IdentityAlias.objects.filter(tenant=tenant, profile=loser).update(
                profile=winner
            )
        }
        for name, hook in merge_hooks().items():
            moved[name] = hook(tenant=tenant, winner=winner, loser=loser)

        for name in FILL_FIELDS:
            if getattr(winner, name) in (None, "") and getattr(loser, name) not in (None, ""):
                setattr(winner, name, getattr(loser, name))
        winner.external_ids = {**loser.external_ids, **winner.external_ids}
        winner.tags = sorted(set(winner.tags) | set(loser.tags))
        winner.lifetime_value_minor += loser.lifetime_value_minor
        winner.activity_count_30d += loser.activity_count_30d
        if loser.last_activity_at and (
            winner.last_activity_at is None or loser.last_activity_at > winner.last_activity_at
        ):
            winner.last_activity_at = loser.last_activity_at
            winner.last_activity_type = loser.last_activity_type
        _merge_consent(winner, loser)
        winner.save()

        CustomerProfile.objects.filter(pk=loser.pk).update(
            status=ProfileStatus.MERGED, merged_into=winner, updated_at=timezone.now()
        )
        # Profiles merged into the loser earlier now point at the final winner.
        CustomerProfile.objects.for_tenant(tenant).filter(merged_into=loser).update(
            merged_into=winner
        )
        now = timezone.now()
        pair = Q(profile=loser) | Q(candidate=loser)
        MergeSuggestion.objects.for_tenant(tenant).filter(
            pair, status=SuggestionStatus.PENDING
        ).filter(Q(profile=winner) | Q(candidate=winner)).update(
            status=SuggestionStatus.MERGED, decided_by=actor, decided_at=now
        )
        MergeSuggestion.objects.for_tenant(tenant).filter(
            pair, status=SuggestionStatus.PENDING
        ).update(
            status=SuggestionStatus.DISMISSED, decided_by=f"{actor} (loser merged)", decided_at=now
        )
        merge = ProfileMerge.objects.create(
            tenant=tenant,
            winner=winner,
            loser=loser,
            loser_snapshot=snapshot,
            moved=moved,
            actor=actor,
            reason=reason,
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.CUSTOMER_MERGED,
            object_type="customers.CustomerProfile",
            object_id=winner.pk,
            ip=ip,
            detail={"loser_id": loser.pk, "merge_id": merge.pk, "reason": reason[:255]},
        )
        return merge


def merge_suggestion_accept(
    *, tenant: Tenant, suggestion: MergeSuggestion, actor: str, ip: str | None = None
) -> ProfileMerge:
    """Merge the pair; the profile the resolve chose (or the older one) survives."""
    chosen = suggestion.evidence.get("chosen")
    winner, loser = suggestion.profile, suggestion.candidate
    if chosen == str(suggestion.candidate_id):
        winner, loser = loser, winner
    if suggestion.status != SuggestionStatus.PENDING:
        raise MergeError({"status": [f"This suggestion is already {suggestion.status.lower()}."]})
    return profile_merge(
        tenant=tenant,
        winner=winner,
        loser=loser,
        actor=actor,
        ip=ip,
        reason=f"Accepted suggestion {suggestion.pk}: {suggestion.reason}",
    )


def merge_suggestion_dismiss(
    *, tenant: Tenant, suggestion: MergeSuggestion, actor: str
) -> MergeSuggestion:
    updated = (
        MergeSuggestion.objects.for_tenant(tenant)
        .filter(pk=suggestion.pk, status=SuggestionStatus.PENDING)
        .update(status=SuggestionStatus.DISMISSED, decided_by=actor, decided_at=timezone.now())
    )
    if not updated:
        raise MergeError({"status": [f"This suggestion is already {suggestion.status.lower()}."]})
    suggestion.refresh_from_db()
    return suggestion


__all__ = [
    "MergeError",
    "ProfileConflict",
    "ProfileNotLive",
    "Resolution",
    "identity_resolve",
    "merge_suggestion_accept",
    "merge_suggestion_dismiss",
    "profile_lock_live",
    "profile_merge",
    "profile_update",
]
