"""The internal HTTP client, side by side: httpx as it comes, httpx tuned, and aiohttp.

    python benchmarks/http_clients.py [--n 3000] [--concurrency 8] [--repeat 3]

The kernel and the dispatcher call the data service for every batch of submits and of
reports, so the client's own CPU per request counts twice over on a machine whose
processes share the cores. This starts the data service (and nx-27017 in memory behind
it) on free ports of 127.0.0.1 and sends N ``GET /healthz`` from this process with
``--concurrency`` in flight, once per client per round (the order rotates each round),
on uvloop as the kernel and the dispatcher run:

* httpx: ``httpx.AsyncClient()`` with its defaults;
* httpx tuned: a pool sized to the concurrency, no proxies or ``.netrc`` from the
  environment (``trust_env=False``), plain HTTP/1.1;
* aiohttp: one ``ClientSession`` as ``backend/store/client.py`` opens it (a connection pool,
  no automatic decompression).

For each: requests per second, and CPU ms per request of this process (the client) and
of the data service (the server; the same work for every client), from /proc. The best
of ``--repeat`` rounds is shown, with each client's CPU as a ratio to aiohttp's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx
import uvloop

from backend.local.embedded import free_port
from benchmarks.common import print_table, process_logs, recording, stop_all
from benchmarks.cpu import CpuMeter
from tests.services import ManagedProcess, python_module, start_mongo

SERVER, CLIENT = "data service", "client (this process)"
STARTUP_TIMEOUT = 60.0


@dataclass
class Runs:
    """Per client: (requests/s, client CPU ms per request, server CPU ms per request)."""

    rounds: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    def best(self, client: str) -> tuple[float, float, float]:
        rounds = self.rounds[client]
        return (max(r[0] for r in rounds), min(r[1] for r in rounds), min(r[2] for r in rounds))


Get = Callable[[str], Awaitable[int]]  # GET url -> status


def httpx_default() -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return httpx.AsyncClient(timeout=30.0)


def httpx_tuned(concurrency: int) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(timeout=30.0, limits=limits, trust_env=False, http1=True,
                             http2=False)


def aiohttp_session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=30.0), raise_for_status=False,
        auto_decompress=False)


async def drive(get: Get, url: str, n: int, concurrency: int) -> float:
    """N GETs with ``concurrency`` in flight; the wall time in seconds."""
    pending = iter(range(n))

    async def lane() -> None:
        for _ in pending:
            status = await get(url)
            if status != 200:
                raise SystemExit(f"GET {url} -> {status}")

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started


async def one_client(name: str, url: str, n: int, concurrency: int,
                     meter: CpuMeter) -> tuple[float, float, float]:
    async def timed(get: Get) -> tuple[float, float, float]:
        await drive(get, url, 2 * concurrency, concurrency)  # open the connections
        before = meter.sample()
        elapsed = await drive(get, url, n, concurrency)
        usage = CpuMeter.usage(before, meter.sample())
        return (n / elapsed, 1000 * usage.seconds[CLIENT] / n,
                1000 * usage.seconds[SERVER] / n)

    if name == "aiohttp":
        async with aiohttp_session(concurrency) as session:
            async def get(target: str) -> int:
                async with session.get(target) as response:
                    await response.read()
                    return response.status
            return await timed(get)
    factory = httpx_default() if name == "httpx" else httpx_tuned(concurrency)
    async with factory as client:
        async def get_httpx(target: str) -> int:
            return (await client.get(target)).status_code
        return await timed(get_httpx)


CLIENTS = ("httpx", "httpx tuned", "aiohttp")


async def measure(url: str, args: argparse.Namespace, meter: CpuMeter, runs: Runs) -> None:
    for round_number in range(args.repeat):
        order = CLIENTS[round_number % 3:] + CLIENTS[:round_number % 3]
        for name in order:
            result = await one_client(name, url, args.n, args.concurrency, meter)
            runs.rounds.setdefault(name, []).append(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="requests per client per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = Runs()
    with process_logs("bench-http-") as logs:
        started: list[ManagedProcess] = []
        try:
            with recording(started):
                _, mongo_url = start_mongo(logs.path)
                port = free_port()
                store = python_module("store", "backend.store", logs.path,
                                      {"MONGODB_URL": mongo_url, "LOG_LEVEL": "WARNING"},
                                      "--port", str(port)).start()
                url = f"http://127.0.0.1:{port}"
                store.wait_http(f"{url}/readyz", STARTUP_TIMEOUT)
                meter = CpuMeter({SERVER: store.pid}, this_process=CLIENT)
                uvloop.run(measure(f"{url}/healthz", args, meter, runs))
        finally:
            stop_all(started)
        logs.ok = True
    base = runs.best("aiohttp")[1]
    rows = [["client", "req/s", "client CPU ms/req", "server CPU ms/req",
             "client CPU ÷ aiohttp"]]
    for name in CLIENTS:
        rate, client_ms, server_ms = runs.best(name)
        rows.append([name, f"{rate:.0f}", f"{client_ms:.3f}", f"{server_ms:.3f}",
                     f"{client_ms / base:.2f}x" if base else "n/a"])
    print_table(f"N={args.n} GET /healthz to the data service per client, concurrency "
                f"C={args.concurrency}, best of {args.repeat} round(s), uvloop; httpx "
                f"{httpx.__version__}, aiohttp {aiohttp.__version__}", rows)

if __name__ == "__main__":
    main()
