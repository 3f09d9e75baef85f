"""The whole system under load: latency, jobs/s and CPU per job, against RQ and Celery.

    python benchmarks/pipeline.py [--n 1000] [--concurrency 8] [--workers 2] [--repeat 3]
                                  [--backends redis,sqs] [--rate 50] [--duration 10]
                                  [--baselines rq,celery]

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

Over 2 and 3 the CPU time of every process is read from /proc (each server with all its
descendants, e.g. the worker processes the executor forks; see ``cpu.py``), and of this
process, the load generator: CPU ms per job for each. Then, with ``--rate`` > 0, jobs are
sent at a steady ``--rate`` per second for ``--duration`` seconds (open loop), and each is
timed from its scheduled send to its ``finished_at``.

Baselines, in the same run on the same redis-server (the redis backend's, the rest of the
system stopped first): bare RQ (``--workers`` SimpleWorker processes) and Celery (prefork,
concurrency ``--workers``) draining N no-op jobs (``baselines.py``). A last table divides
the system's jobs/s and CPU per job by theirs.

Each figure is the best of the rounds (CPU: the round that used least). Submits are
reported as ratios to the baseline measured in the same system a moment before, and SQS
against Redis, so the figures travel between machines better than the raw numbers do.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import uvloop
from rq import Worker as RQWorker

from backend.local.embedded import free_port
from benchmarks.baselines import (
    KINDS,
    Baseline,
    baseline_rows,
    failure,
    parse_kinds,
    require,
    run_baselines,
)
from benchmarks.baselines import heading as baselines_heading
from benchmarks.common import (
    percentile,
    print_table,
    process_logs,
    recording,
    stop_all,
)
from benchmarks.cpu import CpuMeter, Usage
from benchmarks.kernel import (
    Burst,
    LoadClient,
    Steady,
    all_jobs,
    burst,
    expect,
    sign_up,
    steady_rate,
    submit_burst,
    wait_succeeded,
    when,
)
from tests.services import (
    ManagedProcess,
    python_module,
    start_mongo,
    start_moto,
    start_redis,
)

BACKENDS = ("redis", "sqs")
STARTUP_TIMEOUT = 90.0
REDIS, MONGO, MOTO = "redis-server", "nx-27017", "moto_server (SQS)"
STORE, KERNEL, DISPATCHER, WORKERS = ("data service", "kernel", "dispatcher",
                                      "workers (executor + children)")
LOAD = "load generator (this process)"
PROCESSES = (REDIS, MONGO, MOTO, STORE, KERNEL, DISPATCHER, WORKERS, LOAD)


@dataclass
class Round:
    """One round on one backend: the baseline, the submits, and the jobs they made."""

    healthz: Burst
    submit: Burst
    e2e_seconds: float
    waits: list[float]  # per job: created_at -> started_at (kernel, queue, dispatcher, RQ)
    runs: list[float]  # per job: started_at -> finished_at (worker run and its reports)
    cpu: Usage  # first submit -> all succeeded, per process


@dataclass
class Result:
    """Every round on one backend; each figure is the best round's, since noise from
    other work on the machine only ever makes a round slower."""

    rounds: list[Round] = field(default_factory=list)
    steady: Steady | None = None
    baselines: dict[str, Baseline] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # what failed, for the report

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

    @property
    def cpu(self) -> Usage:
        """The CPU of the round that used least in all."""
        return min((r.cpu for r in self.rounds), key=lambda u: u.total)

    def cpu_ms(self, process: str | None = None, system_only: bool = False) -> float:
        """CPU ms per job of one process, or of all (``system_only``: but the load)."""
        usage, jobs = self.cpu, len(self.rounds[0].waits)
        if process is not None:
            return 1000 * usage.seconds.get(process, 0.0) / jobs
        return 1000 * (usage.total - (usage.seconds[LOAD] if system_only else 0.0)) / jobs


# -- the system --------------------------------------------------------------------------
def start_system(backend: str, workers: int, log_dir: Path,
                 processes: dict[str, ManagedProcess],
                 settings: dict[str, str] | None = None) -> tuple[str, str]:
    """Start every process of the system (inside :func:`recording`), each put in
    ``processes`` under the name the CPU table gives it, with ``settings`` over the
    defaults; the kernel's and the data service's URLs."""
    processes[REDIS], redis_url = start_redis(log_dir)
    processes[MONGO], mongo_url = start_mongo(log_dir)
    env = {
        "REDIS_URL": redis_url,
        "MONGODB_URL": mongo_url,
        "DATABASE_NAME": f"bench_{backend}",
        "QUEUE_BACKEND": backend,
        "STANDARD_QUEUE_NAME": f"bench-{backend}-{uuid.uuid4().hex[:8]}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SQS_ENDPOINT_URL": "",
        "WORKER_COUNT": str(workers),
        # One user sends every job of a round, faster than a person would: its limits are
        # raised (not switched off, so that checking them is part of what is measured).
        "SUBMIT_RATE_LIMIT": "100000/second",
        "MAX_UNFINISHED_JOBS_PER_USER": "1000000",
        # Free ports for the metrics endpoints (the defaults may be taken on this machine).
        "METRICS_PORT": str(free_port()),
        "DISPATCHER_METRICS_PORT": str(free_port()),
        **(settings or {}),
    }
    if backend == "sqs":
        processes[MOTO], env["SQS_ENDPOINT_URL"] = start_moto(log_dir)
    store_port, api_port = free_port(), free_port()
    store_url, api_url = f"http://127.0.0.1:{store_port}", f"http://127.0.0.1:{api_port}"
    env["DATA_SERVICE_URL"] = store_url

    def launch(name: str, role: str, module: str, *args: str) -> ManagedProcess:
        processes[name] = python_module(f"{backend}-{role}", module, log_dir, env,
                                        *args).start()
        return processes[name]

    launch(STORE, "store", "backend.store", "--port", str(store_port)).wait_http(
        f"{store_url}/readyz", STARTUP_TIMEOUT)
    launch(KERNEL, "api", "backend.api", "--port", str(api_port)).wait_http(
        f"{api_url}/readyz", STARTUP_TIMEOUT)
    launch(DISPATCHER, "dispatcher", "backend.dispatcher")
    executor = launch(WORKERS, "workers", "backend.workers", "--workers", str(workers))
    with redis.Redis.from_url(redis_url) as connection:
        executor.wait_until(lambda: sum(
            1 for w in RQWorker.all(connection=connection)
            if w.get_state() in ("idle", "started") and w.death_date is None) >= workers,
            STARTUP_TIMEOUT)
    return api_url, store_url


def redis_url_of(server: ManagedProcess) -> str:
    """The URL of a redis-server started by ``start_redis`` (from its command line)."""
    command = server.command
    port = command[command.index("--port") + 1]
    password = command[command.index("--requirepass") + 1] if "--requirepass" in command else ""
    return f"redis://:{password}@127.0.0.1:{port}/0" if password else \
        f"redis://127.0.0.1:{port}/0"


# -- load -------------------------------------------------------------------------------
async def measure(api_url: str, store_url: str, meter: CpuMeter, n: int, concurrency: int,
                  repeat: int, rounds: list[Round]) -> None:
    """Warm up, then ``repeat`` rounds of: the healthz baseline, the submits, and the
    wait for the last job to succeed (CPU read before the submits and after the wait);
    each round is appended to ``rounds`` as it ends."""
    async with LoadClient(concurrency, timeout=30.0) as http:

        async def healthz(i: int) -> None:
            expect(await http.get(f"{api_url}/healthz"))

        # Warm-up: open the connections, create the queue, route a few jobs all the way.
        warm = sign_up(store_url, api_url, "warmup")
        await burst(2 * concurrency, concurrency, healthz)
        warm_burst = await submit_burst(http, api_url, warm, concurrency, concurrency)
        await wait_succeeded(http, api_url, warm, concurrency, warm_burst.ids[-1])
        for _ in range(repeat):
            baseline = await burst(n, concurrency, healthz)
            user = sign_up(store_url, api_url, "bench")
            before = meter.sample()
            submits = await submit_burst(http, api_url, user, n, concurrency)
            await wait_succeeded(http, api_url, user, n, submits.ids[-1])
            after = meter.sample()
            jobs = await all_jobs(http, api_url, user)
            if len(jobs) != n:
                raise SystemExit(f"expected {n} jobs of {user}, the kernel lists {len(jobs)}")
            last = max(when(job["finished_at"]) for job in jobs)
            rounds.append(Round(
                healthz=baseline, submit=submits, e2e_seconds=last - submits.started,
                waits=[when(j["started_at"]) - when(j["created_at"]) for j in jobs],
                runs=[when(j["finished_at"]) - when(j["started_at"]) for j in jobs],
                cpu=CpuMeter.usage(before, after)))


def run_backend(backend: str, args: argparse.Namespace, log_dir: Path,
                kinds: list[str]) -> Result:
    """The system on one backend; then, with ``kinds``, the baselines on its redis-server.

    A failure of the system (it is being worked on) is recorded and the baselines still
    run; only Ctrl-C or SIGTERM stops everything."""
    result = Result()
    started: list[ManagedProcess] = []
    processes: dict[str, ManagedProcess] = {}
    try:
        with recording(started):
            try:
                api_url, store_url = start_system(backend, args.workers, log_dir, processes)
                meter = CpuMeter({name: proc.pid for name, proc in processes.items()},
                                 this_process=LOAD)
                uvloop.run(measure(api_url, store_url, meter, args.n, args.concurrency,
                                    args.repeat, result.rounds))
                if args.rate > 0:
                    steady_user = sign_up(store_url, api_url, "steady")
                    result.steady = uvloop.run(steady_rate(api_url, steady_user, args.rate,
                                                            args.duration))
            except (Exception, SystemExit) as exc:  # not KeyboardInterrupt
                result.errors.append(failure(f"pipeline, {backend} backend", exc))
            if kinds and REDIS in processes and processes[REDIS].alive():
                # Only redis-server stays: the baselines get the cores the system had.
                server = processes[REDIS]
                stop_all([proc for proc in started if proc is not server])
                result.baselines = run_baselines(
                    kinds, redis_url_of(server), server.pid, args.n, args.workers, args.repeat,
                    log_dir)
                result.errors += [b.error for b in result.baselines.values() if b.error]
        return result
    finally:
        stop_all(started)


# -- report -----------------------------------------------------------------------------
def head(args: argparse.Namespace, what: str) -> str:
    return (f"{what}: N={args.n} echo jobs, concurrency C={args.concurrency}, "
            f"W={args.workers} workers, best of {args.repeat} round(s); default settings, "
            f"every process on 127.0.0.1")


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
        ("CPU ms/job, all processes but the load generator",
         lambda r: f"{r.cpu_ms(system_only=True):.1f}", lambda r: r.cpu_ms(system_only=True)),
    ]


def compare(results: dict[str, Result], value: Callable[[Result], float] | None) -> list[str]:
    if "redis" not in results or "sqs" not in results:
        return []
    if value is None:
        return [""]
    base = value(results["redis"])
    return [f"{value(results['sqs']) / base:.2f}x" if base else "n/a"]  # e.g. 0 ms runs


def throughput_table(results: dict[str, Result], args: argparse.Namespace) -> None:
    if not results:
        return
    names = list(results)
    table = [["metric", *names, *(["sqs ÷ redis"] if compare(results, None) else [])]]
    for label, show, value in rows():
        table.append([label, *(show(results[name]) for name in names),
                      *compare(results, value)])
    print_table(head(args, "Throughput and latency (and N GET /healthz)"), table)


def cpu_table(results: dict[str, Result], args: argparse.Namespace) -> None:
    if not results:
        return
    names = list(results)
    table = [["process (with its descendants)",
              *(f"{name}: {unit}" for name in names for unit in ("ms/job", "share"))]]
    for process in PROCESSES:
        if not any(process in r.cpu.seconds for r in results.values()):
            continue
        line = [process]
        for r in results.values():
            if process in r.cpu.seconds:
                line += [f"{r.cpu_ms(process):.2f}",
                         f"{100 * r.cpu.seconds[process] / r.cpu.total:.0f}%"]
            else:
                line += ["—", "—"]
        table.append(line)
    table.append(["total", *(cell for r in results.values()
                             for cell in (f"{r.cpu_ms():.2f}", "100%"))])
    table.append(["total but the load generator", *(
        cell for r in results.values()
        for cell in (f"{r.cpu_ms(system_only=True):.2f}",
                     f"{100 * r.cpu_ms(system_only=True) / r.cpu_ms():.0f}%"))])
    table.append(["window s, cores busy (CPU s ÷ window s)", *(
        cell for r in results.values()
        for cell in (f"{r.cpu.wall:.1f}", f"{r.cpu.total / r.cpu.wall:.2f}"))])
    table.append([f"processes found in {WORKERS}", *(
        cell for r in results.values() for cell in (str(r.cpu.processes[WORKERS]), ""))])
    print_table(head(args, "CPU per job, first submit → all succeeded (/proc utime+stime, "
                     "the round that used least)"), table)


def steady_table(results: dict[str, Result], args: argparse.Namespace) -> None:
    found = {name: r.steady for name, r in results.items() if r.steady is not None}
    if not found:
        return

    def pct(values: list[float]) -> str:
        return f"{percentile(values, 50):.0f} / {percentile(values, 95):.0f}"

    lines: list[tuple[str, Callable[[Steady], str]]] = [
        ("jobs sent", lambda s: str(len(s.sends))),
        ("send rate achieved, jobs/s", lambda s: f"{s.sent_rate:.1f}"),
        ("send lag behind schedule p95 / max ms", lambda s: (
            f"{percentile(s.lags, 95):.1f} / {1000 * max(s.lags):.1f}")),
        ("submit answer p50 / p95 ms", lambda s: pct(s.answers)),
        ("submit → succeeded p50 / p95 ms", lambda s: pct(s.latencies)),
        ("submit → succeeded max ms", lambda s: f"{1000 * max(s.latencies):.0f}"),
    ]
    table = [["metric", *found]]
    table += [[label, *(show(s) for s in found.values())] for label, show in lines]
    print_table(f"Steady rate: echo jobs sent at {args.rate:g} jobs/s for {args.duration:g} s "
                f"(open loop: each at its scheduled time; latencies from that time, "
                f"'succeeded' = the store's finished_at), W={args.workers} workers", table)


def ratio_table(results: dict[str, Result], args: argparse.Namespace) -> None:
    base = next((name for name, r in results.items() if r.baselines), None)
    if base is None:
        return
    reference = results[base] if results[base].rounds else None
    systems: list[tuple[str, float, float]] = [
        (f"pipeline, {name} backend (end to end)", r.e2e_rate, r.cpu_ms(system_only=True))
        for name, r in results.items() if r.rounds]
    systems += [(b.label, b.rate, b.cpu_ms())
                for b in results[base].baselines.values() if b.rounds]
    table = [["system", "jobs/s", "CPU ms/job",
              f"pipeline ({base}) jobs/s ÷ this", f"pipeline ({base}) CPU ms/job ÷ this"]]
    for label, rate, cpu in systems:
        table.append([label, f"{rate:.0f}", f"{cpu:.2f}", *(
            [f"{reference.e2e_rate / rate:.2f}x",
             f"{reference.cpu_ms(system_only=True) / cpu:.2f}x"] if reference else ["—", "—"])])
    print_table(head(args, f"Summary: the pipeline against bare RQ and Celery (the baselines "
                     f"on the {base} run's redis-server)") + "\n"
                "jobs/s: pipeline first submit → last succeeded (submits included), "
                "baselines first dequeue → last finish (enqueued before); CPU ms/job: "
                "every process but the load generator", table)


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    measured = {name: r for name, r in results.items() if r.rounds}
    throughput_table(measured, args)
    cpu_table(measured, args)
    steady_table(results, args)
    for result in results.values():
        if any(b.rounds for b in result.baselines.values()):
            print_table(baselines_heading(args.n, args.workers, args.repeat),
                        baseline_rows(result.baselines))
    ratio_table(results, args)
    errors = [error for r in results.values() for error in r.errors]
    if errors:
        print()
        for error in errors:
            print(error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000,
                        help="requests and jobs per round (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="requests in flight (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers (default 2)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds per backend; the best is shown (default 3)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated queue backends (default redis,sqs)")
    parser.add_argument("--rate", type=float, default=50.0,
                        help="steady-rate jobs/s, 0 to skip (default 50)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of steady rate (default 10)")
    parser.add_argument("--baselines", default=",".join(KINDS),
                        help="comma-separated: rq, celery, or none (default rq,celery)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - set(BACKENDS):
        parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    if min(args.n, args.concurrency, args.workers, args.repeat) < 1:
        parser.error("--n, --concurrency, --workers and --repeat must be at least 1")
    if args.rate < 0 or args.duration <= 0:
        parser.error("--rate must be at least 0 and --duration above 0")
    kinds = parse_kinds(parser, args.baselines)
    require(kinds)
    # The baselines run once, on the redis-server of the redis backend's run if there is one.
    with_baselines = "redis" if "redis" in backends else backends[0]

    results: dict[str, Result] = {}
    with process_logs("bench-pipeline-") as logs:
        for backend in backends:
            results[backend] = run_backend(
                backend, args, logs.path, kinds if backend == with_baselines else [])
        logs.ok = not any(r.errors for r in results.values())
    report(results, args)
    if not logs.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
