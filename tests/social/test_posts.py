"""Posts: per-platform validation before scheduling, scheduling and cancelling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from social.models import Platform, Publication, PublicationStatus
from social.posts import (
    post_cancel,
    post_create,
    post_schedule,
    post_update,
    x_weighted_length,
)
from tests.factories import ClubFactory

from .helpers import make_connection

IMAGE = "https://cdn.example/flag.jpg"


@pytest.fixture
def accounts(tenant_a, club_a):
    return {
        Platform.X: make_connection(tenant_a, club_a, platform=Platform.X, account_id="x1"),
        Platform.INSTAGRAM: make_connection(
            tenant_a, club_a, platform=Platform.INSTAGRAM, account_id="ig1", refresh_token=None
        ),
        Platform.FACEBOOK_PAGE: make_connection(
            tenant_a, club_a, platform=Platform.FACEBOOK_PAGE, account_id="fb1", refresh_token=None
        ),
    }


def _post(tenant, club, accounts, platforms, **data):
    return post_create(
        tenant=tenant,
        club=club,
        data=data,
        connection_ids=[accounts[p].pk for p in platforms],
    )


def test_x_weighted_length_counts_links_23_and_cjk_2():
    assert x_weighted_length("hello") == 5
    assert x_weighted_length("see https://example.com/a/very/long/path?x=1 now") == 4 + 23 + 4
    assert x_weighted_length("ゴルフ") == 6
    assert x_weighted_length("café") == 4


def test_x_refuses_281_weighted_characters_but_takes_a_long_url(tenant_a, club_a, accounts):
    long_url = "https://example.com/" + "x" * 300
    ok = _post(tenant_a, club_a, accounts, [Platform.X], content="a" * 255, link=long_url)
    post_schedule(post=ok)  # 255 + 2 newlines + 23 = 280
    assert Publication.objects.get(post=ok).status == PublicationStatus.SCHEDULED

    too_long = _post(tenant_a, club_a, accounts, [Platform.X], content="ゴ" * 141)
    with pytest.raises(ValidationError) as refused:
        post_schedule(post=too_long)
    assert "counts 282" in str(refused.value)
    assert Publication.objects.get(post=too_long).status == PublicationStatus.DRAFT


def test_instagram_needs_an_image_a_short_caption_and_30_hashtags_at_most(
    tenant_a, club_a, accounts
):
    no_image = _post(tenant_a, club_a, accounts, [Platform.INSTAGRAM], content="Hi")
    with pytest.raises(ValidationError, match="needs an image"):
        post_schedule(post=no_image)
    too_many = _post(
        tenant_a,
        club_a,
        accounts,
        [Platform.INSTAGRAM],
        content="Hi",
        media_urls=[IMAGE],
        hashtags=[f"tag{i}" for i in range(31)],
    )
    with pytest.raises(ValidationError, match="at most 30 hashtags; this post has 31"):
        post_schedule(post=too_many)
    long_caption = _post(
        tenant_a, club_a, accounts, [Platform.INSTAGRAM], content="a" * 2201, media_urls=[IMAGE]
    )
    with pytest.raises(ValidationError, match="at most 2200 characters"):
        post_schedule(post=long_caption)
    fine = _post(
        tenant_a,
        club_a,
        accounts,
        [Platform.INSTAGRAM],
        content="Club champs!",
        media_urls=[IMAGE],
        hashtags=[f"tag{i}" for i in range(30)],
    )
    post_schedule(post=fine)


def test_one_bad_target_stops_the_whole_schedule_with_the_platform_named(
    tenant_a, club_a, accounts
):
    post = _post(
        tenant_a, club_a, accounts, [Platform.FACEBOOK_PAGE, Platform.INSTAGRAM], content="Hi"
    )
    with pytest.raises(ValidationError) as refused:
        post_schedule(post=post)
    assert refused.value.message_dict == {
        "media_urls": ["Instagram professional account: An Instagram post needs an image."]
    }
    assert set(Publication.objects.values_list("status", flat=True)) == {PublicationStatus.DRAFT}


def test_facebook_takes_link_posts_and_photo_posts(tenant_a, club_a, accounts):
    link = _post(
        tenant_a, club_a, accounts, [Platform.FACEBOOK_PAGE], link="https://club.example/champs"
    )
    photo = _post(tenant_a, club_a, accounts, [Platform.FACEBOOK_PAGE], media_urls=[IMAGE])
    empty = _post(tenant_a, club_a, accounts, [Platform.FACEBOOK_PAGE])
    post_schedule(post=link)
    post_schedule(post=photo)
    with pytest.raises(ValidationError, match="needs text, a link or a photo"):
        post_schedule(post=empty)


def test_bad_fields_are_field_errors(tenant_a, club_a, accounts):
    with pytest.raises(ValidationError) as refused:
        _post(
            tenant_a,
            club_a,
            accounts,
            [Platform.X],
            link="javascript:alert(1)",
            media_urls=["nope"],
            hashtags=["ok", "not ok"],
        )
    assert set(refused.value.message_dict) == {"link", "media_urls", "hashtags"}


def test_targets_must_be_this_club_s_accounts(tenant_a, tenant_b, club_a, club_b, accounts):
    other = make_connection(tenant_b, club_b, account_id="b1")
    sister = make_connection(tenant_a, ClubFactory(tenant=tenant_a), account_id="sister")
    for conn in (other, sister):
        with pytest.raises(ValidationError, match="Unknown or disconnected"):
            post_create(
                tenant=tenant_a, club=club_a, data={"content": "x"}, connection_ids=[conn.pk]
            )


def test_schedule_sets_the_due_time_and_cancel_stops_it(tenant_a, club_a, accounts):
    post = _post(tenant_a, club_a, accounts, [Platform.X, Platform.FACEBOOK_PAGE], content="Hi")
    when = timezone.now() + timedelta(days=2)
    post_schedule(post=post, scheduled_at=when)
    assert {(p.status, p.next_attempt_at) for p in Publication.objects.all()} == {
        (PublicationStatus.SCHEDULED, when)
    }
    assert post_cancel(post=post) == 2
    assert set(Publication.objects.values_list("status", flat=True)) == {
        PublicationStatus.CANCELLED
    }


def test_content_is_final_once_publishing_started(tenant_a, club_a, accounts):
    post = _post(tenant_a, club_a, accounts, [Platform.X], content="Hi")
    Publication.objects.filter(post=post).update(status=PublicationStatus.PUBLISHED)
    with pytest.raises(ValidationError, match="final"):
        post_update(post=post, data={"content": "changed"})
    post.refresh_from_db()
    assert post.content == "Hi"
