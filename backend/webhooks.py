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
* The dispatcher's sender (:mod:`backend.workers.dispatcher.webhooks`) claims due
  deliveries for a lease, POSTs them signed (:func:`signature`) and either forgets them
  (a 2xx, or the last attempt) or makes them due again after a backoff. A sender that
  dies mid-delivery leaves its claim to expire: another delivers it again.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec
from redis.asyncio import Redis

from backend.errors import PermanentError
from backend.jobs import Job

SIGNATURE_HEADER = "X-Taskbroker-Signature"
JOB_ID_HEADER = "X-Taskbroker-Job-Id"

DUE_KEY = "taskbroker:webhooks:due"  # sorted set: job id -> when due (ms since the epoch)
DELIVERY_KEY = "taskbroker:webhook:{}"  # hash: url, body, attempts (then state)
KEEP_DONE = 86400  # seconds a finished delivery is remembered, so it is not scheduled again
_DEFAULT_PORTS = {"http": 80, "https": 443}

# KEYS: delivery hash, due set. ARGV: job id, url, body. Due now (on Redis's clock).
_SCHEDULE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'url', ARGV[2], 'body', ARGV[3], 'attempts', 0)
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
return 1
"""


class CallbackRefusedError(PermanentError):
    """A callback URL this server does not deliver to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"callback_url refused: {reason}")
        self.reason = reason


def delivery_key(job_id: str) -> str:
    return DELIVERY_KEY.format(job_id)


def _host_port(netloc: str, scheme: str) -> tuple[str, int]:
    parts = urlsplit(f"{scheme}://{netloc}")
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def check_callback_url(url: str, allowed_hosts: Sequence[str]) -> str:
    """``url`` if webhooks may be delivered there, else :class:`CallbackRefusedError`.

    ``allowed_hosts`` entries are ``host`` (any port) or ``host:port``; the URL's host
    must equal one exactly (no subdomains, no patterns).
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
        allowed_host, allowed_port = _host_port(entry, scheme)
        if allowed_host == host and (":" not in entry.rsplit("]", 1)[-1]
                                     or allowed_port == port):
            return url
    raise CallbackRefusedError(f"host {parts.netloc[:200]!r} is not in "
                               "WEBHOOK_ALLOWED_HOSTS (ask the operator to allow it)")


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Taskbroker-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of
    "<t>.<body>" under the secret>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` within ``tolerance`` seconds
    (what a receiver does; see the README for a standalone version)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - t) <= tolerance and hmac.compare_digest(expected,
                                                                     fields.get("v1", ""))


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
