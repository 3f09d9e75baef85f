"""Webhooks: which callback URLs are allowed, how a delivery is signed, and the durable
schedule of deliveries in Redis.

When a job with a ``callback_url`` finishes, the job (as ``GET /api/v1/jobs/{id}`` shows
it) is POSTed there. Deliveries are *at least once*: a receiver may get the same job
twice and should key what it does on ``X-Taskbroker-Job-Id``.

* The kernel refuses a submit whose URL is not http(s) on a host of
  WEBHOOK_ALLOWED_HOSTS (:func:`check_callback_url`); the sender checks again.
* Whoever learns that a job finished (the recorder, from the data service's answer to a
  batch of reports; the kernel, for a cancel) calls :func:`schedule`: one Lua call that
  records the delivery (URL and body) and makes it due at once, unless one was recorded
  for that job already (a report applied twice schedules one delivery).
* The dispatcher's sender (:mod:`backend.dispatcher.webhook_sender`) claims due
  deliveries for a lease, POSTs them signed (:func:`signature`) and either forgets them
  (a 2xx, or the last attempt) or makes them due again after a backoff. A sender that
  dies mid-delivery leaves its claim to expire: another delivers it again.

Each user signs with a secret of their own, never with WEBHOOK_SECRET itself: the data
service keeps a random key id per user (:class:`WebhookKey`, nothing secret), and whoever
holds WEBHOOK_SECRET (the kernel, to show it; the sender, to sign) derives the user's
secret from it (:func:`derive_secret`). So one user's receiver learns nothing that signs
another user's deliveries, a rotation (a new key id) retires the old secret, and MongoDB
holds nothing that signs. The signed string names the callback URL, so a delivery does
not verify at another receiver either.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from redis.asyncio import Redis

from backend.errors import CallbackRefusedError
from backend.jobs import Job

SIGNATURE_HEADER = "X-Taskbroker-Signature"
JOB_ID_HEADER = "X-Taskbroker-Job-Id"

DUE_KEY = "taskbroker:webhooks:due"  # sorted set: job id -> when due (ms since the epoch)
DELIVERY_KEY = "taskbroker:webhook:{}"  # hash: url, body, attempts (then state)
KEEP_DONE = 86400  # seconds a finished delivery is remembered, so it is not scheduled again
_DEFAULT_PORTS = {"http": 80, "https": 443}
SECRET_PREFIX = "whsec_"  # what a user's signing secret starts with: easy to recognise

KeyId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$",
                                    description="A user's webhook key id: 32 hex digits.")]

# KEYS: delivery hash, due set. ARGV: job id, url, body. Due now (on Redis's clock).
_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'url', ARGV[2], 'body', ARGV[3], 'attempts', 0)
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
return 1
"""


class WebhookKey(msgspec.Struct, kw_only=True):
    """A user's webhook key id as the data service keeps it (not a secret: the secret is
    derived from it and WEBHOOK_SECRET by :func:`derive_secret`)."""

    username: str
    key_id: KeyId
    rotated_at: datetime


class WebhookSecretState(msgspec.Struct, kw_only=True):
    """The kernel's ``GET /api/v1/webhooks/secret``: whether you have one (never the
    secret itself)."""

    exists: bool
    rotated_at: datetime | None = None


class WebhookSecret(msgspec.Struct, kw_only=True):
    """The kernel's ``POST /api/v1/webhooks/secret``: your new signing secret, shown once."""

    secret: str
    rotated_at: datetime


def derive_secret(master: str, user_id: str, key_id: str) -> str:
    """The signing secret of ``user_id`` under their key id: an HMAC-SHA256 of
    ``webhook:<user>:<key id>`` keyed by WEBHOOK_SECRET (``master``), as ``whsec_<hex>``.
    The key id is the last field and has a fixed form, so no two users share the input."""
    mac = hmac.new(master.encode(), f"webhook:{user_id}:{key_id}".encode(), hashlib.sha256)
    return SECRET_PREFIX + mac.hexdigest()


def delivery_key(job_id: str) -> str:
    return DELIVERY_KEY.format(job_id)


def _host_port(netloc: str, scheme: str) -> tuple[str, int]:
    parts = urlsplit(f"{scheme}://{netloc}")
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def check_callback_url(url: str, allowed_hosts: Sequence[str]) -> str:
    """``url`` if webhooks may be delivered there, else :class:`CallbackRefusedError`.

    ``allowed_hosts`` entries are ``host`` (the scheme's default port only: 80 for http,
    443 for https) or ``host:port``; the URL's host must equal one exactly (no subdomains,
    no patterns).
    """
    if not allowed_hosts:
        raise CallbackRefusedError("webhooks are off on this server (WEBHOOK_ALLOWED_HOSTS "
                                   "is empty); leave callback_url out")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise CallbackRefusedError("the URL may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefusedError(f"not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise CallbackRefusedError(f"must be an http or https URL, not {scheme or 'no'} scheme")
    host = (parts.hostname or "").lower()
    if not host:
        raise CallbackRefusedError("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefusedError("the URL may not carry a user name or password")
    port = port or _DEFAULT_PORTS[scheme]
    for entry in allowed_hosts:
        # An entry without a port gets the URL scheme's default: "hooks.internal" must not
        # open hooks.internal:6379 or :2375 to whoever submits a job.
        if _host_port(entry, scheme) == (host, port):
            return url
    raise CallbackRefusedError(f"host {parts.netloc[:200]!r} is not in "
                               "WEBHOOK_ALLOWED_HOSTS (ask the operator to allow it)")


def _mac(secret: str, t: int, url: str, body: bytes) -> str:
    # "<t>.<url>.<body>": the URL is signed, so a delivery replayed to another receiver
    # fails there. The URL holds no space or control character (check_callback_url).
    return hmac.new(secret.encode(), f"{t}.{url}.".encode() + body, hashlib.sha256).hexdigest()


def signature(secret: str, url: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Taskbroker-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<url>.<body>" under the user's secret>``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, url, body)}"


def verify(secret: str, url: str, body: bytes, header: str, tolerance: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` sent to ``url`` (the receiver's own callback URL,
    exactly as submitted) under ``secret`` within ``tolerance`` seconds (what a receiver
    does; docs/examples/webhook_receiver.py is a standalone one)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    return abs(time.time() - t) <= tolerance and hmac.compare_digest(
        _mac(secret, t, url, body), fields.get("v1", ""))


async def schedule(connection: Redis, jobs: Sequence[Job]) -> int:
    """Schedule the delivery of each finished job that has a callback URL, once per job;
    returns how many were new. Raises :class:`redis.RedisError` if Redis did not take them
    (the caller tries again: nothing is half-written)."""
    wanted = [job for job in jobs if job.callback_url and job.finished]
    if not wanted:
        return 0
    async with connection.pipeline(transaction=False) as pipe:
        for job in wanted:
            pipe.eval(_SCHEDULE, 2, delivery_key(job.id), DUE_KEY, job.id, job.callback_url,
                      msgspec.json.encode(job))
        added = await pipe.execute()
    return sum(int(new) for new in added)
