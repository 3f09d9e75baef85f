"""The pure rules behind scheduled jobs and webhooks: due times, callback URL policy, the
signature a receiver checks, and how long stop markers and retries wait."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest
from litestar.exceptions import ValidationException

from backend import markers
from backend.api.scheduling import due_time
from backend.dispatcher.webhook_sender import backoff
from backend.errors import CallbackRefusedError
from backend.jobs import JobExecutionRequest, QueueMessage
from backend.rqjobs import due_second
from backend.settings import WebhookSettings
from backend.webhook_signing import (
    check_callback_url,
    derive_secret,
    signature,
    verify,
)

NOW = datetime(2026, 5, 1, 8, 0, 0, 250_000, tzinfo=UTC)
DAY = 86400.0


def request(**fields: object) -> JobExecutionRequest:
    return JobExecutionRequest(job_name="echo", estimated_time=1, **fields)  # type: ignore[arg-type]


def test_a_delay_or_a_run_at_is_due_at_the_next_whole_second_never_earlier() -> None:
    assert due_time(request(delay=3), 30 * DAY, NOW) == datetime(2026, 5, 1, 8, 0, 4, tzinfo=UTC)
    zoned = datetime(2026, 5, 1, 10, 0, 0, 1000, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=2)))
    assert due_time(request(run_at=zoned), 30 * DAY, NOW) == datetime(
        2026, 5, 1, 10, 0, 1, tzinfo=UTC)
    assert due_time(request(), 30 * DAY, NOW) is None


def test_a_time_in_the_past_means_now() -> None:
    past = request(run_at=NOW - timedelta(days=3))
    assert due_time(past, 30 * DAY, NOW) == NOW
    assert due_time(request(delay=0), 30 * DAY, NOW) == NOW


@pytest.mark.parametrize(("fields", "words"), [
    ({"delay": 1, "run_at": NOW}, "not both"),
    ({"run_at": NOW.replace(tzinfo=None)}, "time zone"),
    ({"delay": 30 * DAY + 1}, "at most 30 days (MAX_SCHEDULE_AHEAD)"),
    ({"delay": 1e300}, "MAX_SCHEDULE_AHEAD"),
    ({"run_at": datetime(9999, 1, 1, tzinfo=UTC)}, "MAX_SCHEDULE_AHEAD"),
])
def test_a_bad_schedule_is_refused_naming_the_rule(fields: dict[str, object],
                                                   words: str) -> None:
    with pytest.raises(ValidationException) as refused:
        due_time(request(**fields), 30 * DAY, NOW)
    assert words in refused.value.detail


def test_the_dispatcher_schedules_only_what_is_still_ahead() -> None:
    now = NOW.timestamp()
    message = QueueMessage(job_id="a" * 24, name="echo", run_at=NOW + timedelta(seconds=2.5))
    assert due_second(message, now) == int(now) + 3
    assert due_second(QueueMessage(job_id="a" * 24, name="echo", run_at=NOW), now) is None
    assert due_second(QueueMessage(job_id="a" * 24, name="echo"), now) is None


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://hooks.example.com/x", ["hooks.example.com"]),
    ("http://hooks.example.com:80/x", ["hooks.example.com"]),
    ("https://HOOKS.Example.com/x", ["hooks.example.com"]),
    ("http://127.0.0.1:9999/x", ["127.0.0.1:9999"]),
    ("https://hooks.example.com/x", ["hooks.example.com:443"]),
    ("http://[::1]:8080/x", ["[::1]:8080"]),
])
def test_allowed_callback_urls(url: str, allowed: list[str]) -> None:
    assert check_callback_url(url, allowed) == url


@pytest.mark.parametrize(("url", "allowed", "words"), [
    ("https://hooks.example.com/x", [], "webhooks are off"),
    ("https://evil.com/x", ["hooks.example.com"], "WEBHOOK_ALLOWED_HOSTS"),
    ("https://hooks.example.com.evil.com/x", ["hooks.example.com"], "WEBHOOK_ALLOWED_HOSTS"),
    ("http://127.0.0.1:9998/x", ["127.0.0.1:9999"], "WEBHOOK_ALLOWED_HOSTS"),
    ("http://hooks.example.com/x", ["hooks.example.com:443"], "WEBHOOK_ALLOWED_HOSTS"),
    # An entry without a port admits the scheme's default port only (80, 443).
    ("http://hooks.example.com:6379/", ["hooks.example.com"], "WEBHOOK_ALLOWED_HOSTS"),
    ("http://hooks.example.com:443/x", ["hooks.example.com"], "WEBHOOK_ALLOWED_HOSTS"),
    ("https://hooks.example.com:80/x", ["hooks.example.com"], "WEBHOOK_ALLOWED_HOSTS"),
    ("file:///etc/passwd", ["hooks.example.com"], "http or https"),
    ("https://a:b@hooks.example.com/", ["hooks.example.com"], "user name or password"),
    ("https:///x", ["hooks.example.com"], "no host"),
])
def test_refused_callback_urls(url: str, allowed: list[str], words: str) -> None:
    with pytest.raises(CallbackRefusedError) as refused:
        check_callback_url(url, allowed)
    assert words in str(refused.value)


def test_the_signature_is_an_hmac_of_the_timestamp_url_and_body_that_verify_checks() -> None:
    body, url = b'{"id":"x"}', "https://hooks.example.com/a"
    header = signature("s3cret", url, body, timestamp=1_700_000_000)
    expected = hmac.new(b"s3cret", b'1700000000.https://hooks.example.com/a.{"id":"x"}',
                        hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    fresh = signature("s3cret", url, body)
    assert verify("s3cret", url, body, fresh)
    assert not verify("s3cret", url, body + b" ", fresh)  # a changed body
    assert not verify("s3cret", "https://hooks.example.com/b", body, fresh)  # another receiver
    assert not verify("other", url, body, fresh)  # another key
    assert not verify("s3cret", url, body, header)  # too old: a replay
    assert not verify("s3cret", url, body, "garbage")


def test_each_user_and_each_rotation_derives_a_secret_of_its_own() -> None:
    alice, bob = "a" * 32, "b" * 32
    secret = derive_secret("master", "alice", alice)
    expected = hmac.new(b"master", f"webhook:alice:{alice}".encode(), hashlib.sha256)
    assert secret == "whsec_" + expected.hexdigest()
    others = {derive_secret("master", "bob", alice), derive_secret("master", "alice", bob),
              derive_secret("another master", "alice", alice), "master"}
    assert secret not in others and len(others) == 4


def test_a_scheduled_jobs_stop_marker_lives_past_its_run_at() -> None:
    assert markers.stop_ttl(86400, None, NOW) == 86400
    assert markers.stop_ttl(86400, NOW + timedelta(days=20), NOW) == 86400 + 20 * 86400
    assert markers.stop_ttl(86400, NOW - timedelta(days=1), NOW) == 86400


def test_webhook_retries_wait_twice_as_long_each_time_up_to_the_maximum() -> None:
    settings = WebhookSettings(_env_file=None, webhook_backoff_base=10,  # type: ignore[call-arg]
                               webhook_backoff_max=60)
    waits = [backoff(attempt, settings) for attempt in range(1, 6)]
    for wait, nominal in zip(waits, [10, 20, 40, 60, 60], strict=True):
        assert nominal * 0.9 <= wait <= nominal * 1.1


@pytest.mark.parametrize("url", ["https://hooks.example.com/a b", "https://hooks.example.com/\n"])
def test_a_callback_url_with_spaces_or_control_characters_is_refused(url: str) -> None:
    with pytest.raises(CallbackRefusedError, match="spaces or control characters"):
        check_callback_url(url, ["hooks.example.com"])
