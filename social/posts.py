"""Posts: what to say (``Post``) and where and when (one ``Publication`` per target
connection), per-platform validation, scheduling and cancelling.

States of a publication: DRAFT → SCHEDULED (validated for its platform; due at
``next_attempt_at``) → PUBLISHING (claimed by the sweep, attempt committed before the call)
→ PUBLISHED | FAILED | NEEDS_REVIEW (the outcome of an attempt could not be known and the
platform could not be checked: staff decide) ; DRAFT/SCHEDULED/NEEDS_REVIEW → CANCELLED.
Content can change only while no publication has started (all DRAFT/SCHEDULED/CANCELLED).

Due times live in the database; ``social.publishers`` sweeps them every minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from crm.models import Club, Tenant

from .models import (
    Connection,
    ConnectionStatus,
    Platform,
    Post,
    Promotion,
    Publication,
    PublicationStatus,
)

X_MAX_WEIGHT = 280
X_URL_WEIGHT = 23
INSTAGRAM_MAX_CAPTION = 2_200
INSTAGRAM_MAX_HASHTAGS = 30
MAX_HASHTAG_LENGTH = 100
URL_RE = re.compile(r"https?://[^\s]+", re.IGNORECASE)
HASHTAG_RE = re.compile(r"(?<!\w)#\w+")
HASHTAG_WORD_RE = re.compile(rf"\w{{1,{MAX_HASHTAG_LENGTH}}}")
# twitter-text v3: these code point ranges weigh 1, everything else (CJK, emoji...) 2.
X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
EDITABLE = (PublicationStatus.DRAFT, PublicationStatus.SCHEDULED, PublicationStatus.CANCELLED)
CANCELLABLE = (
    PublicationStatus.DRAFT,
    PublicationStatus.SCHEDULED,
    PublicationStatus.NEEDS_REVIEW,
)
POST_FIELDS = ("content", "media_urls", "link", "hashtags")
PAST_TOLERANCE = timedelta(minutes=5)


def _hashtags(post: Post) -> list[str]:
    return [f"#{tag.lstrip('#')}" for tag in post.hashtags]


def post_text(post: Post, platform: str) -> str:
    """The text that goes out on ``platform``: content, then (X only: Facebook takes the
    link as a field) the link, then the hashtags."""
    parts = [post.content.strip()]
    if post.link and platform == Platform.X:
        parts.append(post.link)
    tags = " ".join(_hashtags(post))
    if tags:
        parts.append(tags)
    return "\n\n".join(part for part in parts if part)


def x_weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3, simplified): a URL counts 23, a character in
    the light ranges (Latin, Greek, Cyrillic... up to U+10FF, some punctuation) 1, any other
    (CJK, emoji) 2."""
    total = 0
    position = 0
    for match in URL_RE.finditer(text):
        total += _char_weights(text[position : match.start()]) + X_URL_WEIGHT
        position = match.end()
    return total + _char_weights(text[position:])


def _char_weights(text: str) -> int:
    weight = 0
    for char in text:
        code = ord(char)
        light = any(low <= code <= high for low, high in X_LIGHT_RANGES)
        weight += 1 if light else 2
    return weight


def post_validate_for(post: Post, platform: str) -> dict[str, str]:
    """What stops ``post`` going out on ``platform`` (field -> message); empty: it can."""
    errors: dict[str, str] = {}
    text = post_text(post, platform)
    if platform == Platform.X:
        weight = x_weighted_length(text)
        if weight > X_MAX_WEIGHT:
            errors["content"] = (
                f"X allows {X_MAX_WEIGHT} characters (links count {X_URL_WEIGHT}, CJK and "
                f"emoji 2); this post counts {weight}."
            )
        if not text and not post.media_urls:
            errors["content"] = "An X post needs text or an image."
        if len(post.media_urls) > 4:
            errors["media_urls"] = "X takes at most 4 images."
    elif platform == Platform.INSTAGRAM:
        if not post.media_urls:
            errors["media_urls"] = "An Instagram post needs an image."
        elif len(post.media_urls) > 1:
            errors["media_urls"] = "One image per Instagram post (carousels are not supported)."
        if len(text) > INSTAGRAM_MAX_CAPTION:
            errors["content"] = (
                f"Instagram captions are at most {INSTAGRAM_MAX_CAPTION} characters; "
                f"this one has {len(text)}."
            )
        tags = len(HASHTAG_RE.findall(text))
        if tags > INSTAGRAM_MAX_HASHTAGS:
            errors["hashtags"] = (
                f"Instagram allows at most {INSTAGRAM_MAX_HASHTAGS} hashtags; this post has {tags}."
            )
    elif platform == Platform.FACEBOOK_PAGE:
        if not (text or post.link or post.media_urls):
            errors["content"] = "A Facebook post needs text, a link or a photo."
        if len(post.media_urls) > 1:
            errors["media_urls"] = "One photo per Facebook post."
    return errors


def _clean(data: dict[str, Any], *, partial: bool, base: Post | None = None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    url = URLValidator(schemes=["http", "https"])
    if "content" in data or not partial:
        content = data.get("content", "")
        if not isinstance(content, str):
            errors["content"] = "Text."
        else:
            values["content"] = content
    if "link" in data or not partial:
        link = data.get("link") or ""
        try:
            if link:
                url(link)
            values["link"] = link
        except ValidationError:
            errors["link"] = "An http(s) URL."
    if "media_urls" in data or not partial:
        media = data.get("media_urls") or []
        try:
            if not isinstance(media, list):
                raise ValidationError("list")
            for item in media:
                url(item)
            values["media_urls"] = list(media)
        except (ValidationError, TypeError):
            errors["media_urls"] = "A list of http(s) image URLs."
    if "hashtags" in data or not partial:
        tags = data.get("hashtags") or []
        clean_tags = []
        if not isinstance(tags, list):
            errors["hashtags"] = "A list of hashtags."
        else:
            for tag in tags:
                word = str(tag).lstrip("#")
                if not HASHTAG_WORD_RE.fullmatch(word):
                    errors["hashtags"] = f"{tag!r} is not a hashtag (letters, digits, _)."
                    break
                clean_tags.append(word)
            values["hashtags"] = clean_tags
    if errors:
        raise ValidationError(errors)
    return values


def _connections(tenant: Tenant, club: Club, ids: Iterable[Any]) -> list[Connection]:
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise ValidationError({"connections": "Pick at least one account to post to."})
    found = list(
        Connection.objects.for_tenant(tenant)
        .filter(pk__in=ids, club=club)
        .exclude(status=ConnectionStatus.DISCONNECTED)
    )
    if len(found) != len(ids):
        raise ValidationError({"connections": "Unknown or disconnected account for this club."})
    return found


def post_create(
    *,
    tenant: Tenant,
    club: Club,
    data: dict[str, Any],
    connection_ids: Iterable[Any],
    actor: Any = None,
    promotion: Promotion | None = None,
) -> Post:
    """A post with one DRAFT publication per target connection."""
    if club.tenant_id != tenant.pk:
        raise ValidationError({"club": "Not a club of this tenant."})
    values = _clean(data, partial=False)
    connections = _connections(tenant, club, connection_ids)
    with transaction.atomic():
        post = Post.objects.create(
            tenant=tenant, club=club, promotion=promotion, **values, **_created_by(actor)
        )
        Publication.objects.bulk_create(
            [Publication(tenant=tenant, post=post, connection=c) for c in connections]
        )
    return post


def _created_by(actor: Any) -> dict[str, Any]:
    if actor is None:
        return {}
    if getattr(actor, "is_authenticated", False) and getattr(actor, "pk", None):
        return {"created_by": actor, "created_by_label": actor.get_username()[:150]}
    return {"created_by_label": str(actor)[:150]}


def _locked(post: Post) -> list[Publication]:
    return list(
        Publication.objects.select_for_update(of=("self",))
        .filter(tenant_id=post.tenant_id, post=post)
        .select_related("connection")
        .order_by("pk")
    )


def post_update(*, post: Post, data: dict[str, Any]) -> Post:
    """Change what the post says; refused once any target has started publishing."""
    values = _clean(data, partial=True)
    with transaction.atomic():
        publications = _locked(post)
        if any(p.status not in EDITABLE for p in publications):
            raise ValidationError({"status": "This post has started publishing; it is final."})
        for key, value in values.items():
            setattr(post, key, value)
        scheduled = [p for p in publications if p.status == PublicationStatus.SCHEDULED]
        errors = _errors_for(post, scheduled)
        if errors:
            raise ValidationError(errors)
        post.save()
    return post


def _errors_for(post: Post, publications: Iterable[Publication]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for publication in publications:
        platform = publication.connection.platform
        for field, message in post_validate_for(post, platform).items():
            label = Platform(platform).label
            errors.setdefault(field, f"{label}: {message}")
    return errors


def post_schedule(
    *, post: Post, scheduled_at: datetime | None = None, now: datetime | None = None
) -> Post:
    """Schedule every DRAFT or SCHEDULED target at ``scheduled_at`` (default: now, i.e.
    publish now: the next sweep takes it) after validating the post for each platform."""
    now = now or timezone.now()
    when = scheduled_at or now
    if when < now - PAST_TOLERANCE:
        raise ValidationError({"scheduled_at": "This time has passed."})
    with transaction.atomic():
        publications = [
            p
            for p in _locked(post)
            if p.status in (PublicationStatus.DRAFT, PublicationStatus.SCHEDULED)
        ]
        if not publications:
            raise ValidationError({"status": "Nothing left to schedule on this post."})
        errors = _errors_for(post, publications)
        if errors:
            raise ValidationError(errors)
        Publication.objects.filter(pk__in=[p.pk for p in publications]).update(
            status=PublicationStatus.SCHEDULED,
            scheduled_at=when,
            next_attempt_at=when,
            error="",
            updated_at=now,
        )
    return post


def post_cancel(*, post: Post, now: datetime | None = None) -> int:
    """Cancel every target that has not gone (nor is going right now)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = [p.pk for p in _locked(post) if p.status in CANCELLABLE]
        return Publication.objects.filter(pk__in=ids).update(
            status=PublicationStatus.CANCELLED, next_attempt_at=None, updated_at=now
        )


def post_delete(*, post: Post) -> None:
    with transaction.atomic():
        if any(p.status not in EDITABLE for p in _locked(post)):
            raise ValidationError({"status": "A post that has gone out is kept (cancel instead)."})
        post.delete()


def posts_cancel_for_promotion(*, promotion: Promotion, now: datetime) -> int:
    """Cancel the pending publications of a promotion's posts (set-wise)."""
    return Publication.objects.filter(
        tenant_id=promotion.tenant_id,
        post__promotion=promotion,
        status__in=CANCELLABLE,
    ).update(status=PublicationStatus.CANCELLED, next_attempt_at=None, updated_at=now)


__all__ = [
    "POST_FIELDS",
    "post_cancel",
    "post_create",
    "post_delete",
    "post_schedule",
    "post_text",
    "post_update",
    "post_validate_for",
    "posts_cancel_for_promotion",
    "x_weighted_length",
]
