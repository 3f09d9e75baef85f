"""The load pipeline.py puts on the kernel: bursts at a fixed concurrency, a steady rate.

Every call goes through the kernel's public API (``/api/v1``), as a client's would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import msgspec

from benchmarks.common import percentile
from tests.services import create_user, sign_in

# Waiting for the last job must not load the system it measures: a count on the list
# endpoint costs nx-27017 a scan of the jobs (about 0.1 s of CPU per 1000 jobs on 2 cores
# of 2026), so the wait reads the last submitted job by id (some 8 ms of CPU across the
# kernel, data service and nx-27017), and counts rarely until that one is finished.
POLL_JOB = 0.2  # seconds between two reads of the last submitted job
POLL_COUNT = 0.5  # seconds between two counts, once the last submitted job is finished
COUNT_EVERY = 15.0  # seconds between two counts (progress checks) before that
STALL = 60.0  # seconds without one more job succeeded: the pipeline is stuck
TERMINAL = ("succeeded", "failed", "cancelled")


# Every request is signed in, as a client's must be: the API token of each user the load
# makes (one per round) is kept here, and sent with every request made as that user.
_TOKENS: dict[str, dict[str, str]] = {}


def sign_up(store_url: str, api_url: str, prefix: str) -> str:
    """A new (non-admin) user of the system, signed in; its name."""
    user = f"{prefix}-{uuid.uuid4().hex[:6]}"
    create_user(store_url, user)
    _TOKENS[user] = {"Authorization": f"Bearer {sign_in(api_url, user)}"}
    return user


def as_user(user: str) -> dict[str, str]:
    return _TOKENS[user]


@dataclass
class Burst:
    """N requests at a fixed concurrency: per-request latencies and the wall time."""

    latencies: list[float]
    elapsed: float
    started: float  # time.time() of the first request
    ids: list[str] = field(default_factory=list)  # job ids, in the order of the answers

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed


async def burst(n: int, concurrency: int, request: Callable[[int], Awaitable[None]]) -> Burst:
    """Run ``request(i)`` for i in 0..n-1 with ``concurrency`` in flight at any time."""
    latencies: list[float] = []
    pending = iter(range(n))

    async def lane() -> None:
        for i in pending:  # the shared iterator hands each index to one lane only
            t = time.perf_counter()
            await request(i)
            latencies.append(time.perf_counter() - t)

    wall, t0 = time.time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return Burst(latencies, time.perf_counter() - t0, wall)


@dataclass
class Answer:
    """One HTTP answer, read whole."""

    method: str
    url: str
    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class LoadClient:
    """The load generator's HTTP client: aiohttp on keep-alive connections, JSON by msgspec.

    The load shares the machine's cores with the system it measures, so it must cost
    little: per request this spends about half the CPU of httpx's client (whose pool
    bookkeeping and SSL-context setup showed as half of this process's time). At most
    ``connections`` requests are in flight on their own connections.
    """

    def __init__(self, connections: int, timeout: float = 60.0) -> None:
        self.connections = connections
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        connector = aiohttp.TCPConnector(limit=self.connections, ssl=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout),
            skip_auto_headers=("User-Agent",))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      params: dict[str, Any] | None = None, json: Any = None) -> Answer:
        assert self._session is not None, "use LoadClient in `async with`"
        data = None
        if json is not None:
            data = msgspec.json.encode(json)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        query = {k: str(v) for k, v in params.items()} if params else None
        async with self._session.request(method, url, headers=headers, params=query,
                                         data=data) as response:
            return Answer(method, url, response.status, await response.read())

    async def get(self, url: str, *, headers: dict[str, str] | None = None,
                  params: dict[str, Any] | None = None) -> Answer:
        return await self.request("GET", url, headers=headers, params=params)

    async def post(self, url: str, *, headers: dict[str, str] | None = None,
                   json: Any = None) -> Answer:
        return await self.request("POST", url, headers=headers, json=json)


def expect(answer: Answer, status: int = 200) -> Answer:
    if answer.status_code != status:
        raise SystemExit(f"{answer.method} {answer.url} -> "
                         f"{answer.status_code}: {answer.text[:300]}")
    return answer


async def submit(http: LoadClient, api_url: str, user: str, i: int) -> str:
    """Submit one ``echo`` job; its id."""
    answer = await http.post(f"{api_url}/api/v1/job_executor/async", headers=as_user(user),
                             json={"job_name": "echo", "estimated_time": 1, "params": {"i": i}})
    return str(expect(answer).json()["job_id"])


async def submit_burst(http: LoadClient, api_url: str, user: str, n: int,
                       concurrency: int) -> Burst:
    ids: list[str] = []

    async def one(i: int) -> None:
        ids.append(await submit(http, api_url, user, i))

    result = await burst(n, concurrency, one)
    result.ids = ids
    return result


async def count(http: LoadClient, api_url: str, user: str, status: str) -> int:
    answer = await http.get(f"{api_url}/api/v1/jobs", headers=as_user(user),
                            params={"status": status, "limit": 1})
    return int(expect(answer).json()["total"])


async def wait_succeeded(http: LoadClient, api_url: str, user: str, n: int,
                         last_id: str | None = None, within: float | None = None) -> None:
    """Wait until all ``n`` jobs of ``user`` succeeded.

    Reads ``last_id`` (the last job submitted) by id until it is finished, then counts on
    the list endpoint. Fails with the jobs' statuses if a job failed, if no job succeeded
    for ``STALL`` seconds, or after ``within`` seconds (default: 120, or n/2 if longer).
    """
    timeout = within if within is not None else max(120.0, n / 2)
    start = time.monotonic()
    last_finished = last_id is None
    done, progressed, next_count = -1, start, start + (0 if last_finished else COUNT_EVERY)
    while True:
        now = time.monotonic()
        if not last_finished:
            job = expect(await http.get(f"{api_url}/api/v1/jobs/{last_id}",
                                        headers=as_user(user))).json()
            if job["status"] in TERMINAL:
                if job["status"] != "succeeded":
                    raise await stuck(http, api_url, user, f"job {last_id} {job['status']}")
                last_finished, next_count = True, now
        if now >= next_count:
            if (succeeded := await count(http, api_url, user, "succeeded")) >= n:
                return
            if succeeded > done:
                done, progressed = succeeded, now
            elif await count(http, api_url, user, "failed"):
                raise await stuck(http, api_url, user, "jobs failed")
            next_count = now + (POLL_COUNT if last_finished else COUNT_EVERY)
        if now - progressed > STALL:
            raise await stuck(http, api_url, user, f"no job succeeded for {STALL:.0f} s "
                              f"(is the pipeline stuck? see the process logs)")
        if now - start > timeout:
            raise await stuck(http, api_url, user, f"not all succeeded within {timeout:.0f} s")
        await asyncio.sleep(POLL_COUNT if last_finished else POLL_JOB)


async def stuck(http: LoadClient, api_url: str, user: str, what: str) -> SystemExit:
    """The error to raise: ``what``, with how many of the user's jobs are in each status."""
    jobs = await all_jobs(http, api_url, user)
    statuses = Counter(job["status"] for job in jobs)
    unfinished = [f"{job['id']} {job['status']}" for job in jobs
                  if job["status"] != "succeeded"][:3]
    return SystemExit(f"{user}: {what}; {len(jobs)} jobs: "
                      f"{', '.join(f'{k} {v}' for k, v in statuses.most_common())}; "
                      f"e.g. {'; '.join(unfinished)}")


async def all_jobs(http: LoadClient, api_url: str, user: str) -> list[dict]:
    jobs: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = expect(await http.get(f"{api_url}/api/v1/jobs", params=params,
                                     headers=as_user(user))).json()
        jobs += page["items"]
        if not (cursor := page.get("next_cursor")):
            return jobs


def when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- a steady rate (open loop) ----------------------------------------------------------
@dataclass
class Steady:
    """Jobs sent at a fixed rate, each at its own scheduled time whatever the answers do."""

    rate: float
    duration: float
    lags: list[float] = field(default_factory=list)  # actual send - scheduled send
    answers: list[float] = field(default_factory=list)  # scheduled send -> submit answer
    latencies: list[float] = field(default_factory=list)  # scheduled send -> finished_at
    sends: list[float] = field(default_factory=list)  # actual sends, time.perf_counter()

    @property
    def sent_rate(self) -> float:
        """The rate achieved: jobs over the time from the first send to the last."""
        return (len(self.sends) - 1) / (max(self.sends) - min(self.sends))


async def steady_rate(api_url: str, user: str, rate: float, duration: float) -> Steady:
    """Submit ``echo`` jobs at ``rate`` per second for ``duration`` seconds (open loop:
    job i is sent at t0 + i / rate, not when an answer comes back), wait until all have
    succeeded, and measure each from its scheduled send: latency is never hidden by a
    late send (a slow answer does not delay the next job)."""
    n = max(2, round(rate * duration))
    result = Steady(rate, duration)
    sent_at: dict[str, float] = {}  # job id -> scheduled send, time.time()
    last: list[str] = []  # job ids in the order of the answers
    async with LoadClient(256) as http:
        expect(await http.get(f"{api_url}/healthz"))  # open a connection first

        async def one(i: int, scheduled: float, scheduled_wall: float) -> None:
            result.sends.append(time.perf_counter())
            result.lags.append(result.sends[-1] - scheduled)
            job_id = await submit(http, api_url, user, i)
            result.answers.append(time.perf_counter() - scheduled)
            sent_at[job_id] = scheduled_wall
            last.append(job_id)

        t0, t0_wall = time.perf_counter() + 0.05, time.time() + 0.05
        tasks = []
        for i in range(n):
            if (delay := t0 + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, t0 + i / rate, t0_wall + i / rate)))
        await asyncio.gather(*tasks)
        await wait_succeeded(http, api_url, user, n, last[-1],
                             within=max(120.0, duration * 6))
        jobs = await all_jobs(http, api_url, user)
    missing = set(sent_at) - {job["id"] for job in jobs}
    if missing:
        raise SystemExit(f"steady rate: {len(missing)} submitted jobs are not listed")
    result.latencies = [when(job["finished_at"]) - sent_at[job["id"]] for job in jobs]
    return result
