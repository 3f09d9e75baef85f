"""Batch submits against single submits: jobs/s accepted, data service requests per job,
and end-to-end time, in the same run on the same system.

    python benchmarks/batch.py [--n 1000] [--batch 100] [--concurrency 8] [--workers 2]
                               [--repeat 3] [--backends redis]

For each backend the whole system runs as real processes on 127.0.0.1 with the default
settings (started as ``pipeline.py`` starts it). Each of ``--repeat`` rounds submits N
``echo`` jobs both ways, one after the other, each as a new user:

* single: N ``POST /api/v1/job_executor/async`` with ``--concurrency`` in flight (the
  kernel already groups concurrent submits into one data service call: group commit);
* batch: N/``--batch`` ``POST /api/v1/jobs/batch`` of ``--batch`` jobs each, one after
  the other (as ``taskbroker submit-many`` sends a file).

Measured per way: jobs accepted per second (first request → last answer), data service
requests per job (the data service's own request counter, ``/metrics``): the kernel's
record calls (``POST /jobs/bulk``), and every request from the first submit until every job
succeeded (reports, look-ups; the benchmark's own polls left out), and end to end (first
request → the last job's ``finished_at``). Each figure is the best round's; the table ends
with batch ÷ single.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import print_table, process_logs, recording, stop_all
from benchmarks.kernel import (
    LoadClient,
    all_jobs,
    as_user,
    expect,
    sign_up,
    submit_burst,
    wait_succeeded,
    when,
)
from benchmarks.pipeline import start_system
from tests.services import ManagedProcess

MODES = ("single", "batch")
# The data service requests the benchmark itself makes while it waits for the jobs (the
# kernel reads one job, and counts on the list): left out of the pipeline's count.
POLLS = {("GET", "/job/{job_id:str}"), ("GET", "/jobs")}
RECORD = ("POST", "/jobs/bulk")  # how the kernel records submitted jobs
REQUESTS_TOTAL = "taskbroker_http_requests"  # Litestar's <prefix>_requests_total


@dataclass
class Run:
    """One way of submitting N jobs, in one round."""

    accepted_seconds: float
    e2e_seconds: float
    record_requests: float | None  # the kernel's POST /jobs/bulk, per job
    pipeline_requests: float | None  # every request, first submit -> all succeeded, per job


@dataclass
class Result:
    runs: dict[str, list[Run]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    errors: list[str] = field(default_factory=list)

    def best(self, mode: str, metric: Callable[[Run], float | None]) -> float | None:
        values = [v for v in (metric(run) for run in self.runs[mode]) if v is not None]
        return min(values) if values else None


async def store_requests(http: LoadClient, store_url: str) -> dict[tuple[str, str], float]:
    """The data service's request counter by (method, route); empty without /metrics."""
    answer = await http.get(f"{store_url}/metrics")
    if answer.status_code != 200:
        return {}
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(answer.text):
        if family.name != REQUESTS_TOTAL:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels.get("method", ""), sample.labels.get("path", ""))
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def requests_between(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float],
                     keep: Callable[[tuple[str, str]], bool]) -> float | None:
    if not after:
        return None
    return sum(value - before.get(key, 0.0) for key, value in after.items()
               if keep(key) and key[1] != "/metrics")


async def submit_batches(http: LoadClient, api_url: str, user: str, n: int,
                         size: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, size):
        jobs = [{"job_name": "echo", "estimated_time": 1, "params": {"i": i}}
                for i in range(start, min(n, start + size))]
        answer = expect(await http.post(f"{api_url}/api/v1/jobs/batch", headers=as_user(user),
                                        json={"jobs": jobs}))
        ids += [result["job_id"] for result in answer.json()["results"]]
    return ids


async def one_way(mode: str, http: LoadClient, api_url: str, store_url: str,
                  args: argparse.Namespace) -> Run:
    user = sign_up(store_url, api_url, mode)
    before = await store_requests(http, store_url)
    started = time.time()
    if mode == "single":
        ids = (await submit_burst(http, api_url, user, args.n, args.concurrency)).ids
    else:
        ids = await submit_batches(http, api_url, user, args.n, args.batch)
    accepted = time.time() - started
    await wait_succeeded(http, api_url, user, args.n, ids[-1])
    finished = await store_requests(http, store_url)
    jobs = await all_jobs(http, api_url, user)
    if len(jobs) != args.n:
        raise SystemExit(f"expected {args.n} jobs of {user}, the kernel lists {len(jobs)}")
    last = max(when(job["finished_at"]) for job in jobs)
    record = requests_between(before, finished, lambda key: key == RECORD)
    pipeline = requests_between(before, finished, lambda key: key not in POLLS)
    return Run(accepted_seconds=accepted, e2e_seconds=last - started,
               record_requests=None if record is None else record / args.n,
               pipeline_requests=None if pipeline is None else pipeline / args.n)


async def measure(api_url: str, store_url: str, args: argparse.Namespace, result: Result,
                  ) -> None:
    async with LoadClient(args.concurrency) as http:
        warm = sign_up(store_url, api_url, "warmup")  # connections, the queue, a few jobs
        ids = await submit_batches(http, api_url, warm, args.concurrency, args.concurrency)
        await wait_succeeded(http, api_url, warm, args.concurrency, ids[-1])
        for round_number in range(args.repeat):
            # Alternate which way goes first, so neither always meets a warmer system.
            order = MODES if round_number % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                result.runs[mode].append(await one_way(mode, http, api_url, store_url, args))


def run_backend(backend: str, args: argparse.Namespace, log_dir: Path) -> Result:
    result = Result()
    started: list[ManagedProcess] = []
    processes: dict[str, ManagedProcess] = {}
    try:
        with recording(started):
            try:
                api_url, store_url = start_system(backend, args.workers, log_dir, processes)
                uvloop.run(measure(api_url, store_url, args, result))
            except (Exception, SystemExit) as exc:  # not KeyboardInterrupt
                result.errors.append(f"batch, {backend} backend: {type(exc).__name__}: {exc}")
        return result
    finally:
        stop_all(started)


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    def show(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.2f}{unit}" if value < 10 else \
            f"{value:.0f}{unit}"

    def ratio(batch: float | None, single: float | None) -> str:
        return "n/a" if batch is None or single is None or single == 0 else \
            f"{batch / single:.2f}x"

    table = [["metric", *(f"{backend}: {mode}" for backend in results for mode in MODES),
              *(f"{backend}: batch ÷ single" for backend in results)]]
    lines: list[tuple[str, Callable[[Result, str], float | None]]] = [
        ("jobs/s accepted (first request → last answer)",
         lambda r, m: (args.n / s) if (s := r.best(m, lambda x: x.accepted_seconds)) else None),
        ("data service record calls (POST /jobs/bulk) per job",
         lambda r, m: r.best(m, lambda x: x.record_requests)),
        ("data service requests per job, all (first submit → all succeeded)",
         lambda r, m: r.best(m, lambda x: x.pipeline_requests)),
        ("end to end s (first request → last finished_at)",
         lambda r, m: r.best(m, lambda x: x.e2e_seconds)),
        ("end to end jobs/s",
         lambda r, m: (args.n / s) if (s := r.best(m, lambda x: x.e2e_seconds)) else None),
    ]
    for label, value in lines:
        row = [label]
        row += [show(value(r, mode)) for r in results.values() for mode in MODES]
        row += [ratio(value(r, "batch"), value(r, "single")) for r in results.values()]
        table.append(row)
    print_table(f"Batch against single submits: N={args.n} echo jobs; single: concurrency "
                f"C={args.concurrency}; batch: {-(-args.n // args.batch)} batches of "
                f"{args.batch}, one at a time; W={args.workers} workers, best of "
                f"{args.repeat} round(s); default settings, every process on 127.0.0.1 "
                f"(data service requests: its own /metrics counter, the benchmark's polls "
                f"left out)", table)
    for result in results.values():
        for error in result.errors:
            print(error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="jobs per way and round")
    parser.add_argument("--batch", type=int, default=100, help="jobs per batch (1..100)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="single submits in flight (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is shown")
    parser.add_argument("--backends", default="redis",
                        help="comma-separated queue backends: redis, sqs (default redis)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"redis", "sqs"}:
        parser.error("--backends: choose from redis, sqs")
    if min(args.n, args.concurrency, args.workers, args.repeat) < 1 or \
            not 1 <= args.batch <= 100:
        parser.error("--n, --concurrency, --workers, --repeat at least 1; --batch 1..100")
    results: dict[str, Result] = {}
    with process_logs("bench-batch-") as logs:
        for backend in backends:
            results[backend] = run_backend(backend, args, logs.path)
        logs.ok = not any(r.errors for r in results.values())
    report(results, args)
    if not logs.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
