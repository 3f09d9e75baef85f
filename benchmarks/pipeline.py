"""Submit latency and end-to-end jobs/s of the whole system, per queue backend.

    python benchmarks/pipeline.py [--n 200] [--concurrency 8] [--workers 2]
                                  [--repeat 3] [--backends redis,sqs]

For each backend the whole system runs as real processes on free ports of 127.0.0.1
(redis-server, nx-27017 in memory, moto_server for SQS, the data service, the kernel,
the dispatcher and ``--workers`` RQ workers), started as every deployment starts them
and with the default settings. After a warm-up, each of ``--repeat`` rounds runs, with
``--concurrency`` requests in flight:

1. baseline: N ``GET /healthz`` to the kernel (a request that does no work);
2. N ``POST /api/v1/job_executor/async`` of ``echo`` jobs (each answer means: recorded
   in the data service, sent to the queue, marked queued);
3. end to end: from the first submit until the last of the N jobs is ``succeeded``
   (the store's ``finished_at``), polling the kernel's list endpoint.

Each figure is the best of the rounds. Submits are reported as ratios to the baseline
measured in the same system a moment before, and SQS against Redis, so the figures
travel between machines better than the raw numbers do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402
from rq import Worker as RQWorker  # noqa: E402

from backend.embedded import free_port  # noqa: E402
from tests.services import (  # noqa: E402
    ManagedProcess,
    python_module,
    start_mongo,
    start_moto,
    start_redis,
)

BACKENDS = ("redis", "sqs")
STARTUP_TIMEOUT = 90.0


def percentile(seconds: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) in ms."""
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Burst:
    """N requests at a fixed concurrency: per-request latencies and the wall time."""

    latencies: list[float]
    elapsed: float
    started: float  # time.time() of the first request

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed


@dataclass
class Round:
    """One round on one backend: the baseline, the submits, and the jobs they made."""

    healthz: Burst
    submit: Burst
    e2e_seconds: float
    waits: list[float]  # per job: created_at -> started_at (kernel, queue, dispatcher, RQ)
    runs: list[float]  # per job: started_at -> finished_at (worker run and its reports)


@dataclass
class Result:
    """Every round on one backend; each figure is the best round's, since noise from
    other work on the machine only ever makes a round slower."""

    rounds: list[Round]

    def low(self, metric: Callable[[Round], float]) -> float:
        return min(metric(r) for r in self.rounds)

    def high(self, metric: Callable[[Round], float]) -> float:
        return max(metric(r) for r in self.rounds)

    @property
    def healthz_p50(self) -> float:
        return self.low(lambda r: r.healthz.pct(50))

    @property
    def healthz_rate(self) -> float:
        return self.high(lambda r: r.healthz.rate)

    @property
    def submit_p50(self) -> float:
        return self.low(lambda r: r.submit.pct(50))

    @property
    def submit_rate(self) -> float:
        return self.high(lambda r: r.submit.rate)

    @property
    def e2e_rate(self) -> float:
        return self.high(lambda r: len(r.waits) / r.e2e_seconds)


# -- the system --------------------------------------------------------------------------
@contextmanager
def recording(started: list[ManagedProcess]) -> Iterator[None]:
    """Append every ManagedProcess to ``started`` the moment it starts.

    The helpers start a server and then wait for it; a Ctrl-C (or a timeout) during
    that wait would otherwise lose the only reference to a running server.
    """
    original = ManagedProcess.start

    def start(self: ManagedProcess) -> ManagedProcess:
        started.append(self)
        return original(self)

    ManagedProcess.start = start  # type: ignore[method-assign]
    try:
        yield
    finally:
        ManagedProcess.start = original  # type: ignore[method-assign]


def start_system(backend: str, workers: int, log_dir: Path) -> str:
    """Start every process of the system (inside :func:`recording`); the kernel's URL."""
    _, redis_url = start_redis(log_dir)
    _, mongo_url = start_mongo(log_dir)
    env = {
        "REDIS_URL": redis_url,
        "MONGODB_URL": mongo_url,
        "DATABASE_NAME": f"bench_{backend}",
        "QUEUE_BACKEND": backend,
        "STANDARD_QUEUE_NAME": f"bench-{backend}-{uuid.uuid4().hex[:8]}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SQS_ENDPOINT_URL": start_moto(log_dir)[1] if backend == "sqs" else "",
        "WORKER_COUNT": str(workers),
    }
    store_port, api_port = free_port(), free_port()
    store_url, api_url = f"http://127.0.0.1:{store_port}", f"http://127.0.0.1:{api_port}"
    env["DATA_SERVICE_URL"] = store_url

    def launch(role: str, module: str, *args: str) -> ManagedProcess:
        return python_module(f"{backend}-{role}", module, log_dir, env, *args).start()

    launch("store", "backend.store", "--port", str(store_port)).wait_http(
        f"{store_url}/readyz", STARTUP_TIMEOUT)
    launch("api", "backend.api", "--port", str(api_port)).wait_http(
        f"{api_url}/readyz", STARTUP_TIMEOUT)
    launch("dispatcher", "backend.workers.dispatcher")
    executor = launch("workers", "backend.workers", "--workers", str(workers))
    with redis.Redis.from_url(redis_url) as connection:
        executor.wait_until(lambda: sum(
            1 for w in RQWorker.all(connection=connection)
            if w.get_state() in ("idle", "started") and w.death_date is None) >= workers,
            STARTUP_TIMEOUT)
    return api_url


def stop_all(processes: list[ManagedProcess]) -> None:
    """Stop the processes by PID, the last started first (workers before their Redis)."""
    for proc in reversed(processes):
        try:
            proc.stop()
        except Exception as exc:  # keep stopping the others
            print(f"could not stop {proc.name} (pid {proc.pid}): {exc}", file=sys.stderr)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the ``finally`` that stops the servers runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- load -------------------------------------------------------------------------------
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


def expect(answer: httpx.Response, status: int = 200) -> httpx.Response:
    if answer.status_code != status:
        raise SystemExit(f"{answer.request.method} {answer.request.url} -> "
                         f"{answer.status_code}: {answer.text[:300]}")
    return answer


async def submit_burst(http: httpx.AsyncClient, api_url: str, user: str, n: int,
                       concurrency: int) -> Burst:
    async def submit(i: int) -> None:
        expect(await http.post(f"{api_url}/api/v1/job_executor/async", json={
            "job_name": "echo", "user_id": user, "estimated_time": 1, "params": {"i": i}}))

    return await burst(n, concurrency, submit)


async def count(http: httpx.AsyncClient, api_url: str, user: str, status: str) -> int:
    answer = await http.get(f"{api_url}/api/v1/jobs",
                            params={"user_id": user, "status": status, "limit": 1})
    return int(expect(answer).json()["total"])


async def wait_succeeded(http: httpx.AsyncClient, api_url: str, user: str, n: int) -> None:
    """Poll the kernel's list endpoint until all ``n`` jobs of ``user`` succeeded."""
    deadline = time.monotonic() + max(120.0, n / 2)
    while (done := await count(http, api_url, user, "succeeded")) < n:
        if failed := await count(http, api_url, user, "failed"):
            raise SystemExit(f"{user}: {failed} of {n} jobs failed")
        if time.monotonic() > deadline:
            raise SystemExit(f"{user}: only {done} of {n} jobs succeeded in time")
        await asyncio.sleep(0.1)


async def all_jobs(http: httpx.AsyncClient, api_url: str, user: str) -> list[dict]:
    jobs: list[dict] = []
    cursor = None
    while True:
        params = {"user_id": user, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = expect(await http.get(f"{api_url}/api/v1/jobs", params=params)).json()
        jobs += page["items"]
        if not (cursor := page.get("next_cursor")):
            return jobs


def when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def measure(api_url: str, n: int, concurrency: int, repeat: int) -> Result:
    """Warm up, then ``repeat`` rounds of: the healthz baseline, the submits, and the
    wait for the last job to succeed."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:

        async def healthz(i: int) -> None:
            expect(await http.get(f"{api_url}/healthz"))

        # Warm-up: open the connections, create the queue, route a few jobs all the way.
        warm = f"warmup-{uuid.uuid4().hex[:6]}"
        await burst(2 * concurrency, concurrency, healthz)
        await submit_burst(http, api_url, warm, concurrency, concurrency)
        await wait_succeeded(http, api_url, warm, concurrency)
        rounds = []
        for _ in range(repeat):
            baseline = await burst(n, concurrency, healthz)
            user = f"bench-{uuid.uuid4().hex[:6]}"
            submits = await submit_burst(http, api_url, user, n, concurrency)
            await wait_succeeded(http, api_url, user, n)
            jobs = await all_jobs(http, api_url, user)
            if len(jobs) != n:
                raise SystemExit(f"expected {n} jobs of {user}, the kernel lists {len(jobs)}")
            last = max(when(job["finished_at"]) for job in jobs)
            rounds.append(Round(
                healthz=baseline, submit=submits, e2e_seconds=last - submits.started,
                waits=[when(j["started_at"]) - when(j["created_at"]) for j in jobs],
                runs=[when(j["finished_at"]) - when(j["started_at"]) for j in jobs]))
    return Result(rounds)


def run_backend(backend: str, args: argparse.Namespace, log_dir: Path) -> Result:
    started: list[ManagedProcess] = []
    try:
        with recording(started):
            api_url = start_system(backend, args.workers, log_dir)
        return asyncio.run(measure(api_url, args.n, args.concurrency, args.repeat))
    finally:
        # A second Ctrl-C must not cut the clean-up short and orphan servers.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_all(started)
        finally:
            signal.signal(signal.SIGINT, previous)


# -- report -----------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}")


Row = tuple[str, Callable[[Result], str], Callable[[Result], float] | None]


def rows() -> list[Row]:
    """The table's lines: label, the figure as shown, the value compared across backends."""
    def both(burst: Callable[[Round], Burst]) -> Callable[[Result], str]:
        return lambda r: (f"{r.low(lambda x: burst(x).pct(50)):.1f} / "
                          f"{r.low(lambda x: burst(x).pct(95)):.1f}")

    def stage(values: Callable[[Round], list[float]]) -> Callable[[Result], str]:
        return lambda r: (f"{r.low(lambda x: percentile(values(x), 50)):.0f} / "
                          f"{r.low(lambda x: percentile(values(x), 95)):.0f}")

    return [
        ("GET /healthz p50 / p95 ms (baseline)", both(lambda x: x.healthz),
         lambda r: r.healthz_p50),
        ("GET /healthz req/s (baseline)", lambda r: f"{r.healthz_rate:.0f}",
         lambda r: r.healthz_rate),
        ("submit p50 / p95 ms", both(lambda x: x.submit), lambda r: r.submit_p50),
        ("submit p50 ÷ healthz p50", lambda r: f"{r.submit_p50 / r.healthz_p50:.1f}x", None),
        ("submits/s", lambda r: f"{r.submit_rate:.0f}", lambda r: r.submit_rate),
        ("submits/s ÷ healthz req/s", lambda r: f"{r.submit_rate / r.healthz_rate:.2f}x",
         None),
        ("end to end jobs/s (first submit → last succeeded)",
         lambda r: f"{r.e2e_rate:.0f}", lambda r: r.e2e_rate),
        ("end to end jobs/s ÷ submits/s", lambda r: f"{r.e2e_rate / r.submit_rate:.2f}x",
         None),
        ("per job: created → started p50 / p95 ms", stage(lambda x: x.waits),
         lambda r: r.low(lambda x: percentile(x.waits, 50))),
        ("per job: started → succeeded p50 / p95 ms", stage(lambda x: x.runs),
         lambda r: r.low(lambda x: percentile(x.runs, 50))),
    ]


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    names = list(results)
    both = "redis" in results and "sqs" in results
    print(f"N={args.n} echo jobs (and N GET /healthz), concurrency C={args.concurrency}, "
          f"W={args.workers} workers, best of {args.repeat} round(s); default settings, "
          f"every process on 127.0.0.1")
    print(f"machine: {machine()}")
    header = ["metric", *names] + (["sqs ÷ redis"] if both else [])
    table = [header, ["---"] * len(header)]
    for label, show, value in rows():
        line = [label, *(show(results[name]) for name in names)]
        if both:
            line.append(f"{value(results['sqs']) / value(results['redis']):.2f}x"
                        if value else "")
        table.append(line)
    for line in table:
        print("| " + " | ".join(line) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="requests and jobs (default 200)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="requests in flight (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers (default 2)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds per backend; the best is shown (default 3)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated queue backends (default redis,sqs)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - set(BACKENDS):
        parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    if min(args.n, args.concurrency, args.workers, args.repeat) < 1:
        parser.error("--n, --concurrency, --workers and --repeat must be at least 1")

    log_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    results: dict[str, Result] = {}
    ok = False
    try:
        with terminate_as_interrupt():
            for backend in backends:
                results[backend] = run_backend(backend, args, log_dir)
        ok = True
    finally:
        if ok:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            print(f"process logs kept in {log_dir}", file=sys.stderr)
    report(results, args)


if __name__ == "__main__":
    main()
