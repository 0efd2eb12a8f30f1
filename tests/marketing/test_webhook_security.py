"""Attacks on the Messaging webhook and the public tokens (issue 11) fail and change nothing:
computable message ids, events for messages never sent, events dated far away, provider data
overwriting our ids, long or non-string ids, huge timestamps, NUL characters, and the error
shapes of refusals."""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import signing
from django.test import override_settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from customers.models import Activity, ConsentRecord, CustomerProfile
from marketing.common import UNSUBSCRIBE_SALT, keyed_mac, message_identity, unsubscribe_token
from marketing.delivery import unsubscribe_url
from marketing.interactions import (
    TRACK_SALT,
    click_url,
    message_by_identity,
    open_url,
    webhook_signature,
)
from marketing.models import Interaction, Message, MessageStatus, Suppression
from tests.marketing.builders import WEBHOOK_URL, post_webhook, webhook_event

# The shared fixtures (tests/marketing/conftest.py): the clock at noon in Johannesburg, and
# ``sent``, one email sent to Ann.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("at_ten_to_noon", "fresh_messaging_backend"),
]


def _signed(client, body: bytes, *, timestamp: str | None = None):
    stamp = timestamp or str(int(time.time()))
    return client.generic(
        "POST",
        WEBHOOK_URL,
        body,
        content_type="application/json",
        HTTP_X_CRM_TIMESTAMP=stamp,
        HTTP_X_CRM_SIGNATURE=webhook_signature(settings.MESSAGING_WEBHOOK_SECRET, stamp, body),
    )


def _state(ann: CustomerProfile) -> tuple:
    ann.refresh_from_db()
    return (ann.email_opt_in, ann.email_consent_at, ann.last_activity_at, ann.last_activity_type)


def _untouched(ann: CustomerProfile, before: tuple) -> None:
    """Nothing the webhook can change has changed for Ann."""
    assert _state(ann) == before
    assert ann.email_opt_in is True
    assert not Interaction.objects.exists()
    assert not Suppression.objects.exists()
    assert not ConsentRecord.objects.filter(customer=ann).exists()


# ----------------------------------------------------------------------------- message ids


def test_the_old_computable_message_id_cannot_unsubscribe_anyone(client, sent):
    ann, _campaign, message = sent
    before = _state(ann)
    # What anyone knowing the tenant id could compute before: sha256 of "tenant:pk".
    unkeyed = hashlib.sha256(f"{message.tenant_id}:{message.pk}".encode()).hexdigest()[:24]
    guesses = [f"crm-{message.pk}-{unkeyed}", f"crm-{message.pk}-{unkeyed}{'0' * 8}"]
    assert message_identity(message) not in guesses
    response = post_webhook(
        client,
        [
            {**webhook_event(message, "complained", f"c{i}"), "messageId": guess}
            for i, guess in enumerate(guesses)
        ],
    )
    assert response.status_code == 200
    assert response.json()["recorded"] == 0
    assert [r["errors"] for r in response.json()["rejected"]] == [
        {"messageId": ["Unknown message."]}
    ] * 2
    _untouched(ann, before)


def test_message_ids_are_keyed_by_the_secret_key_and_verify_with_its_fallbacks(sent):
    _ann, _campaign, message = sent
    identity = message_identity(message)
    assert message_by_identity(identity) == message
    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40):
        assert message_identity(message) != identity
        assert message_by_identity(identity) is None
    with override_settings(
        SECRET_KEY="another-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]
    ):
        assert message_by_identity(identity) == message  # rotated key: sent mail still counts
    assert message_by_identity(identity[:-1] + ("0" if identity[-1] != "0" else "1")) is None


def test_public_tokens_signed_with_another_key_do_nothing(client, sent):
    ann, _campaign, message = sent
    before = _state(ann)
    with override_settings(SECRET_KEY="an-attackers-guess-" + "y" * 40):
        forged_unsubscribe = signing.dumps({"m": message.pk}, salt=UNSUBSCRIBE_SALT)
        forged_open = open_url(message).replace(settings.PUBLIC_BASE_URL, "")
        forged_click = click_url(message, "https://evil.example").replace(
            settings.PUBLIC_BASE_URL, ""
        )
    # A token of one purpose is no token of another.
    track_as_unsubscribe = signing.dumps({"m": message.pk}, salt=TRACK_SALT, compress=True)
    assert client.post(f"/u/{forged_unsubscribe}").status_code == 404
    assert client.post(f"/u/{track_as_unsubscribe}").status_code == 404
    assert client.get(forged_open).status_code == 200  # the pixel, always
    assert client.get(forged_click).status_code == 404
    _untouched(ann, before)


def test_unsubscribe_tokens_are_keyed_macs_that_verify_with_the_fallback_keys(client, sent):
    ann, _campaign, message = sent
    token = unsubscribe_token(message.pk)
    assert re.fullmatch(rf"{message.pk}-[0-9a-f]{{32}}", token)
    # Another message's id with this MAC, or a digit of the MAC changed: no such token.
    for forged in (
        f"{message.pk + 1}-{token.split('-')[1]}",
        token[:-1] + ("0" if token[-1] != "0" else "1"),
        unsubscribe_token(message.pk, secret="an-attackers-guess-" + "y" * 40),
    ):
        assert client.post(f"/u/{forged}").status_code == 404
    ann.refresh_from_db()
    assert ann.email_opt_in is True
    # After a key rotation, mail already delivered still unsubscribes.
    with override_settings(
        SECRET_KEY="another-secret-key-" + "x" * 40, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]
    ):
        assert unsubscribe_token(message.pk) != token
        assert client.post(f"/u/{token}").status_code == 200
    ann.refresh_from_db()
    assert ann.email_opt_in is False


def test_unsubscribe_links_of_the_older_signed_form_still_work(client, sent):
    ann, _campaign, message = sent
    older = signing.dumps({"m": message.pk}, salt=UNSUBSCRIBE_SALT, compress=True)
    assert client.post(f"/u/{older}").status_code == 200
    ann.refresh_from_db()
    assert ann.email_opt_in is False


@pytest.mark.parametrize("value", ["1:2", "", "crm-1", "x" * 300])
def test_keyed_mac_is_djangos_salted_hmac_with_the_key_derived_once(value):
    for secret in (None, "another-secret-key-" + "x" * 40):
        assert keyed_mac("a.salt", value, secret=secret) == (
            salted_hmac("a.salt", value, secret=secret, algorithm="sha256").hexdigest()
        )


# ----------------------------------------------------------------------------- never sent


@pytest.mark.parametrize(
    "status", [MessageStatus.SKIPPED, MessageStatus.FAILED, MessageStatus.QUEUED]
)
def test_events_for_a_message_that_was_never_sent_change_nothing(client, sent, status):
    ann, _campaign, message = sent
    before = _state(ann)
    Message.objects.filter(pk=message.pk).update(status=status)
    response = post_webhook(
        client,
        [webhook_event(message, "complained", "spam"), webhook_event(message, "opened", "open")],
    )
    assert response.status_code == 200
    assert response.json()["recorded"] == 0
    assert {r["id"]: r["errors"] for r in response.json()["rejected"]} == {
        "spam": {"messageId": ["The message was not sent."]},
        "open": {"messageId": ["The message was not sent."]},
    }
    path = unsubscribe_url(message).replace(settings.PUBLIC_BASE_URL, "")
    assert client.post(path).status_code == 404
    assert client.get(open_url(message).replace(settings.PUBLIC_BASE_URL, "")).status_code == 200
    _untouched(ann, before)


# ----------------------------------------------------------------------------- time window


def test_event_times_outside_the_window_are_rejected_one_by_one(client, sent):
    ann, _campaign, message = sent
    now = timezone.now()
    response = post_webhook(
        client,
        [
            {**webhook_event(message, "opened", "o-ok"), "timestamp": now.isoformat()},
            {
                **webhook_event(message, "opened", "o-9999"),
                "timestamp": "9999-12-31T23:59:59+00:00",
            },
            {
                **webhook_event(message, "complained", "c-future"),
                "timestamp": (now + timedelta(minutes=6)).isoformat(),
            },
            {
                **webhook_event(message, "opened", "o-past"),
                "timestamp": (message.sent_at - timedelta(minutes=6)).isoformat(),
            },
            {
                **webhook_event(message, "delivered", "d-skew"),
                "timestamp": (message.sent_at - timedelta(minutes=4)).isoformat(),
            },
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert body["recorded"] == 2
    assert body["rejected"] == [
        {
            "index": 1,
            "id": "o-9999",
            "errors": {"timestamp": ["More than five minutes in the future."]},
        },
        {
            "index": 2,
            "id": "c-future",
            "errors": {"timestamp": ["More than five minutes in the future."]},
        },
        {"index": 3, "id": "o-past", "errors": {"timestamp": ["Before the message was sent."]}},
    ]
    ann.refresh_from_db()
    assert ann.last_activity_at <= now + timedelta(seconds=5)
    assert ann.email_opt_in is True
    assert set(Interaction.objects.values_list("event_id", flat=True)) == {"o-ok", "d-skew"}


# ----------------------------------------------------------------------------- metadata


def test_provider_data_cannot_replace_our_ids_on_the_activity(client, sent):
    ann, campaign, message = sent
    data = {"url": "https://x.test", "campaign_id": "someone-else", "message_id": 1}
    response = post_webhook(client, [webhook_event(message, "clicked", "c1", data=data)])
    assert response.json()["recorded"] == 1
    activity = Activity.objects.get(customer=ann, type="email.clicked")
    assert activity.metadata == {
        "campaign_id": str(campaign.pk),
        "message_id": message.pk,
        "data": data,
    }


# ----------------------------------------------------------------------------- ids


def test_event_ids_must_be_strings_of_at_most_128_characters(client, sent):
    ann, _campaign, message = sent
    before = _state(ann)
    long_a, long_b = "e" * 128 + "a", "e" * 128 + "b"  # cut to 128 they would collide
    response = post_webhook(
        client,
        [
            webhook_event(message, "opened", long_a),
            webhook_event(message, "clicked", long_b),
            webhook_event(message, "opened", {"nested": "object"}),
            webhook_event(message, "opened", 12345),
            {**webhook_event(message, "opened", "m-obj"), "messageId": {"crm": 1}},
            {**webhook_event(message, "opened", "t-list"), "type": ["opened"]},
            {**webhook_event(message, "opened", "ts-num"), "timestamp": 1764000000},
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert body["recorded"] == 0
    assert body["rejected"] == [
        {"index": 0, "id": None, "errors": {"id": ["At most 128 characters."]}},
        {"index": 1, "id": None, "errors": {"id": ["At most 128 characters."]}},
        {"index": 2, "id": None, "errors": {"id": ["Required, a string."]}},
        {"index": 3, "id": None, "errors": {"id": ["Required, a string."]}},
        {"index": 4, "id": "m-obj", "errors": {"messageId": ["Required, a string."]}},
        {
            "index": 5,
            "id": "t-list",
            "errors": {
                "type": ["One of bounced, clicked, complained, delivered, opened, unsubscribed."]
            },
        },
        {"index": 6, "id": "ts-num", "errors": {"timestamp": ["An ISO 8601 date-time."]}},
    ]
    _untouched(ann, before)
    exact = post_webhook(client, [webhook_event(message, "opened", "e" * 128)])
    assert exact.json()["recorded"] == 1


# ----------------------------------------------------------------------------- NUL


def test_a_nul_character_rejects_that_event_only_and_a_retry_is_stable(client, sent):
    ann, _campaign, message = sent
    events = [
        webhook_event(message, "delivered", "d1"),
        webhook_event(message, "clicked", "c1", data={"url": "https://x.test/\u0000"}),
        webhook_event(message, "opened", "o1\u0000"),
        webhook_event(message, "opened", "o2", data={"k\u0000": 1}),
        webhook_event(message, "opened", "o3", data={"bad": "\ud800"}),
        webhook_event(message, "opened", "o4"),
    ]
    first = post_webhook(client, events)
    assert first.status_code == 200
    bad = {"event": ["Contains a NUL character or an invalid character."]}
    assert first.json() == {
        "recorded": 2,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "id": "c1", "errors": bad},
            {"index": 2, "id": None, "errors": bad},
            {"index": 3, "id": "o2", "errors": bad},
            {"index": 4, "id": "o3", "errors": bad},
        ],
    }
    again = post_webhook(client, events)
    assert again.status_code == 200
    assert (again.json()["recorded"], again.json()["duplicates"]) == (0, 2)
    assert again.json()["rejected"] == first.json()["rejected"]
    assert set(Interaction.objects.values_list("event_id", flat=True)) == {"d1", "o4"}
    ann.refresh_from_db()
    assert ann.email_opt_in is True


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "stamp",
    ["1" * 400, "9" * 5000, "-1", "+1764000000", "\u0661\u0667\u0666\u0664"],
)
def test_a_malformed_request_timestamp_is_a_401_not_a_500(client, sent, stamp):
    ann, _campaign, message = sent
    before = _state(ann)
    body = json.dumps({"events": [webhook_event(message, "complained", "c1")]}).encode()
    response = _signed(client, body, timestamp=stamp)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "status": 401,
        "code": "authentication_failed",
        "message": "Bad timestamp.",
    }
    _untouched(ann, before)


def test_refusals_use_the_documented_error_codes(client, sent):
    _ann, _campaign, message = sent
    missing = client.post(WEBHOOK_URL, {"events": []}, content_type="application/json")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "not_authenticated"
    wrong = post_webhook(client, [webhook_event(message, "opened", "o1")], secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == {
        "status": 401,
        "code": "authentication_failed",
        "message": "Bad signature.",
    }
    not_json = _signed(client, b"{not json")
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "parse_error"
    deep = _signed(client, b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 400
    assert deep.json()["error"]["code"] == "parse_error"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_a_json_405(client, method):
    response = getattr(client, method)(WEBHOOK_URL)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "POST"
    assert response.json() == {
        "error": {
            "status": 405,
            "code": "method_not_allowed",
            "message": f'Method "{method.upper()}" not allowed.',
        }
    }


def test_an_event_dated_9999_cannot_freeze_consent(client, sent):
    """The original report: a "complained" event dated 9999 stamped consent time forever."""
    ann, _campaign, message = sent
    before = _state(ann)
    response = post_webhook(
        client,
        [{**webhook_event(message, "complained", "c9999"), "timestamp": "9999-01-01T00:00:00Z"}],
    )
    assert response.json()["rejected"][0]["errors"] == {
        "timestamp": ["More than five minutes in the future."]
    }
    _untouched(ann, before)
