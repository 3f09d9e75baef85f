"""Submit latency while many live event streams are open, against none, in the same run.

    python benchmarks/streams.py [--streams 500] [--n 300] [--concurrency 8] [--repeat 3]

The system runs as real processes on free ports of 127.0.0.1 (redis-server, nx-27017 in
memory, the data service, the kernel and the dispatcher; no workers, so every job stays
``queued`` and every stream stays open). Each round sends N ``echo`` submits with
``--concurrency`` in flight and times each answer: first with no stream open, then with
``--streams`` ``GET /api/v1/jobs/{id}/events`` streams open on as many jobs (each stream's
first event received before the timing starts). The kernel serves every stream of a
process from one poll of the data service, on a connection pool of its own, so the ratio
should stay near 1.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from backend.local.embedded import free_port  # noqa: E402
from tests.services import (  # noqa: E402
    ManagedProcess,
    create_user,
    python_module,
    sign_in,
    start_mongo,
    start_redis,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def submits(http: httpx.AsyncClient, n: int, concurrency: int) -> list[float]:
    """Latencies (s) of ``n`` echo submits, ``concurrency`` in flight."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            started = time.perf_counter()
            answer = await http.post("/api/v1/job_executor/async", json={
                "job_name": "echo", "user_id": f"bench-{index % 50}", "estimated_time": 1})
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise SystemExit(f"submit failed: {answer.status_code} {answer.text[:200]}")

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies


async def open_streams(api: str, job_ids: list[str],
                       headers: dict[str, str]) -> tuple[list[asyncio.Task[None]],
                                                         httpx.AsyncClient]:
    """One live stream per job, each past its first event; returns the tasks holding them."""
    client = httpx.AsyncClient(base_url=api, timeout=None, headers=headers,
                               limits=httpx.Limits(max_connections=len(job_ids) + 10))
    ready = asyncio.Semaphore(0)

    async def follow(job_id: str) -> None:
        async with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
            if response.status_code != 200:
                raise SystemExit(f"stream refused: {response.status_code}")
            signalled = False
            async for line in response.aiter_lines():
                if line.startswith("data:") and not signalled:
                    ready.release()
                    signalled = True

    tasks = [asyncio.create_task(follow(job_id)) for job_id in job_ids]
    for _ in job_ids:
        await asyncio.wait_for(ready.acquire(), 60)
    return tasks, client


async def measure(api: str, args: argparse.Namespace,
                  headers: dict[str, str]) -> dict[str, list[float]]:
    # An admin submits for 50 users and follows jobs of many: one signed-in caller.
    async with httpx.AsyncClient(base_url=api, timeout=30, headers=headers,
                                 limits=httpx.Limits(max_connections=64)) as http:
        await submits(http, 50, args.concurrency)  # warm-up
        quiet, busy = [], []
        targets = []
        for index in range(args.streams):
            answer = await http.post("/api/v1/job_executor/async", json={
                "job_name": "echo", "user_id": f"viewer-{index}", "estimated_time": 1})
            targets.append(answer.json()["job_id"])
        for _ in range(args.repeat):
            quiet.append(percentile(await submits(http, args.n, args.concurrency), 50))
        tasks, client = await open_streams(api, targets, headers)
        try:
            for _ in range(args.repeat):
                busy.append(percentile(await submits(http, args.n, args.concurrency), 50))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()
    return {"quiet": quiet, "busy": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    started: list[ManagedProcess] = []
    try:
        redis_proc, redis_url = start_redis(logs)
        started.append(redis_proc)
        mongo_proc, mongo_url = start_mongo(logs)
        started.append(mongo_proc)
        store_port, api_port = free_port(), free_port()
        env = {"REDIS_URL": redis_url, "MONGODB_URL": mongo_url, "LOG_LEVEL": "WARNING",
               "DATA_SERVICE_URL": f"http://127.0.0.1:{store_port}",
               "SSE_MAX_STREAMS": str(args.streams + 10),
               "SSE_MAX_STREAMS_PER_USER": str(args.streams + 10),
               "FRONTEND_DIST": "/nonexistent"}
        store = python_module("store", "backend.store", logs, env, "--port", str(store_port))
        started.append(store.start())
        store.wait_http(f"http://127.0.0.1:{store_port}/readyz", 60)
        api = python_module("api", "backend.api", logs, env, "--port", str(api_port))
        started.append(api.start())
        api.wait_http(f"http://127.0.0.1:{api_port}/readyz", 60)
        started.append(python_module("dispatcher", "backend.dispatcher", logs,
                                     env).start())
        api_url = f"http://127.0.0.1:{api_port}"
        create_user(f"http://127.0.0.1:{store_port}", "bench-admin", role="admin")
        token = sign_in(api_url, "bench-admin")
        result = asyncio.run(measure(api_url, args, {"Authorization": f"Bearer {token}"}))
    finally:
        for proc in reversed(started):
            proc.stop()
    quiet, busy = min(result["quiet"]), min(result["busy"])
    print(f"N={args.n} echo submits, concurrency C={args.concurrency}, best of {args.repeat}; "
          f"{args.streams} live streams; Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}\n")
    print("| submit p50 ms | no stream open | " f"{args.streams} streams open | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| best of {args.repeat} | {quiet:.1f} | {busy:.1f} | {busy / quiet:.2f}x |")


if __name__ == "__main__":
    main()
