"""Bare RQ and Celery draining N no-op jobs: the baselines of pipeline.py.

    python benchmarks/baselines.py [--n 1000] [--workers 2] [--repeat 3] \
                                   [--baselines rq,celery]

``pipeline.py`` runs these on the redis-server of its own run (after stopping the rest of
the system); run alone, this script starts its own redis-server. Each round, on a fresh
Redis database:

- **bare RQ**: N ``benchmarks.noop.echo`` jobs enqueued in one pipeline, then ``--workers``
  processes each running ``rq.SimpleWorker`` in burst mode (``rq_drain.py``);
- **Celery**: N ``echo`` tasks sent (broker and result backend on the same redis-server,
  databases 1 and 2), then one ``celery worker --pool prefork --concurrency W`` started.

The workers start, import, connect and wait at a gate; the benchmark reads CPU times from
/proc and releases them, so start-up and enqueueing stay out of the window. jobs/s is N
over the time from the release to the last job's finish as the library recorded it (RQ's
``ended_at``, Celery's ``date_done``); the first dequeue follows the release at once (RQ's
burst start registers the worker first: some 15 ms on 2 cores, under 1% of the window at
N=1000, and counted against RQ). CPU ms/job
covers the worker processes (and their children) and redis-server over the release →
all-done window. The best round's rate is shown, and the CPU of the round that used least.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from rq import Queue

from benchmarks.common import (
    ROOT,
    print_table,
    process_logs,
    recording,
    stop_all,
)
from benchmarks.cpu import CpuMeter, Usage, kill_leftovers
from tests.services import ManagedProcess, start_redis

KINDS = ("rq", "celery")
RQ_DB, CELERY_BROKER_DB, CELERY_RESULT_DB = 3, 1, 2  # the system itself uses database 0
READY_TIMEOUT = 60.0  # seconds for the workers to start and reach the gate
POLL = 0.01  # seconds between checks for the last result
WORKERS, REDIS = "worker processes (incl. children)", "redis-server"


@dataclass
class Drain:
    """One round: N jobs drained, the window, and the CPU the processes used in it."""

    jobs: int
    seconds: float  # release -> the last job's finish
    cpu: Usage

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


@dataclass
class Baseline:
    """Every round of one library; the best rate, and the CPU of the leanest round."""

    kind: str
    workers: int
    rounds: list[Drain]
    error: str | None = None  # why the rounds stopped, if one failed

    @property
    def label(self) -> str:
        if self.kind == "rq":
            return f"bare RQ ({self.workers}x rq.SimpleWorker, burst)"
        return f"Celery (prefork, concurrency {self.workers})"

    @property
    def rate(self) -> float:
        return max(r.rate for r in self.rounds)

    @property
    def cpu(self) -> Usage:
        return min((r.cpu for r in self.rounds), key=lambda u: u.total)

    def cpu_ms(self, group: str | None = None) -> float:
        """CPU ms per job of one group, or of all of them."""
        usage = self.cpu
        seconds = usage.total if group is None else usage.seconds[group]
        return 1000 * seconds / self.rounds[0].jobs


def with_db(redis_url: str, db: int) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{db}"


def stamp(value: str | bytes) -> float:
    text = value.decode() if isinstance(value, bytes) else value
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def wait_list(connection: redis.Redis, key: str, count: int, timeout: float,
              processes: Sequence[ManagedProcess], what: str) -> None:
    """Pop ``count`` entries of list ``key``; fail clearly if a worker dies or time runs out."""
    deadline = time.monotonic() + timeout
    got = 0
    while got < count:
        if connection.blpop([key], timeout=0.1) is not None:
            got += 1
            continue
        for proc in processes:
            if not proc.alive():
                raise SystemExit(f"{what}: {proc.name} exited early:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {got} of {count} after {timeout:.0f} s; "
                             f"worker log {processes[0].log_path}:\n{processes[0].log_tail()}")


def drain_timeout(n: int) -> float:
    return max(60.0, n / 20)


def rq_round(redis_url: str, redis_pid: int, n: int, workers: int, log_dir: Path) -> Drain:
    url = with_db(redis_url, RQ_DB)
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    name, gate = f"bench-rq-{uuid.uuid4().hex[:8]}", f"bench:gate:{uuid.uuid4().hex[:8]}"
    queue = Queue(name, connection=connection)
    jobs = queue.enqueue_many([Queue.prepare_data("benchmarks.noop.echo", args=({"i": i},))
                               for i in range(n)])
    procs = [ManagedProcess(f"rq-simpleworker-{name}-{k}",
                            [sys.executable, str(ROOT / "benchmarks" / "rq_drain.py"), url,
                             name, gate], log_dir).start() for k in range(workers)]
    try:
        wait_list(connection, f"{gate}:ready", workers, READY_TIMEOUT, procs,
                  "RQ baseline: workers ready")
        meter = CpuMeter({WORKERS: [p.pid for p in procs], REDIS: redis_pid})
        before = meter.sample()
        connection.rpush(f"{gate}:go", *["go"] * workers)
        wait_list(connection, f"{gate}:done", workers, drain_timeout(n), procs,
                  "RQ baseline: workers done")
        after = meter.sample()
        done = queue.finished_job_registry.get_job_count(cleanup=False)
        if done != n:
            raise SystemExit(f"RQ baseline: {done} of {n} jobs finished "
                             f"({queue.failed_job_registry.count} failed)")
        pipe = connection.pipeline(transaction=False)
        for job in jobs:
            pipe.hget(job.key, "ended_at")
        last = max(stamp(ended) for ended in pipe.execute())
        connection.rpush(f"{gate}:exit", *["exit"] * workers)
        for proc in procs:  # let them exit by themselves before the stop (a SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.proc.wait(10)  # type: ignore[union-attr]
    finally:
        stop_all(procs)
    return Drain(n, last - before.at, CpuMeter.usage(before, after))


def celery_round(redis_url: str, redis_pid: int, n: int, workers: int, log_dir: Path) -> Drain:
    from celery import Celery

    broker_url = with_db(redis_url, CELERY_BROKER_DB)
    results_url = with_db(redis_url, CELERY_RESULT_DB)
    broker, results = redis.Redis.from_url(broker_url), redis.Redis.from_url(results_url)
    broker.flushdb()
    results.flushdb()
    name, gate = f"bench-celery-{uuid.uuid4().hex[:8]}", f"bench:gate:{uuid.uuid4().hex[:8]}"
    # The sender has no result backend: the worker stores the results all the same, and
    # the sender does not subscribe to each task's result channel on redis-server.
    sender = Celery("bench-send", broker=broker_url, set_as_current=False)
    with sender.producer_or_acquire() as producer:
        ids = [sender.send_task("echo", args=({"i": i},), queue=name, producer=producer).id
               for i in range(n)]
    sender.close()
    if (queued := broker.llen(name)) != n:
        raise SystemExit(f"Celery baseline: {queued} of {n} tasks on the broker's list {name}")
    celery = str(Path(sys.executable).parent / "celery")
    env = {"BENCH_CELERY_BROKER": broker_url, "BENCH_CELERY_BACKEND": results_url,
           "BENCH_GATE": f"{broker_url} {gate}", "PYTHONPATH": str(ROOT)}
    proc = ManagedProcess(
        f"celery-{name}",
        [celery, "-A", "benchmarks.celery_app", "worker", "--pool", "prefork",
         "--concurrency", str(workers), "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-Q", name, "--loglevel", "WARNING", "-n", f"{name}@%h"],
        log_dir, env=env).start()
    seen = None  # the worker's processes, as last sampled
    try:
        # The pool's processes, then the main process (which then waits for the go).
        wait_list(broker, f"{gate}:ready", workers + 1, READY_TIMEOUT, [proc],
                  "Celery baseline: worker ready")
        meter = CpuMeter({WORKERS: proc.pid, REDIS: redis_pid})
        before = seen = meter.sample()
        broker.rpush(f"{gate}:go", "go")
        deadline = time.monotonic() + drain_timeout(n)
        while (stored := results.dbsize()) < n:
            if not proc.alive():
                raise SystemExit(f"Celery baseline: worker exited:\n{proc.log_tail()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"Celery baseline: {stored} of {n} results stored in time; "
                                 f"worker log {proc.log_path}:\n{proc.log_tail()}")
            time.sleep(POLL)
        after = seen = meter.sample()
    finally:
        # The pool's processes as they are now, to kill any the main process leaves behind.
        seen = CpuMeter({WORKERS: proc.pid}).sample() if proc.alive() else seen
        stop_all([proc])
        if seen is not None:
            kill_leftovers(seen, [WORKERS])
    metas = [json.loads(raw) for start in range(0, n, 500)
             for raw in results.mget([f"celery-task-meta-{i}" for i in ids[start:start + 500]])
             if raw is not None]
    if len(metas) != n or any(m["status"] != "SUCCESS" for m in metas):
        bad = [m for m in metas if m["status"] != "SUCCESS"][:1]
        raise SystemExit(f"Celery baseline: {len(metas)} results, not all SUCCESS: {bad}")
    last = max(stamp(m["date_done"]) for m in metas)
    return Drain(n, last - before.at, CpuMeter.usage(before, after))


def run_baselines(kinds: Sequence[str], redis_url: str, redis_pid: int, n: int, workers: int,
                  repeat: int, log_dir: Path) -> dict[str, Baseline]:
    """``repeat`` rounds of each library, alternating, on the given redis-server.

    A library whose round fails gets no more rounds (its ``error`` says why, also on
    stderr); the other goes on."""
    found = {kind: Baseline(kind, workers, []) for kind in kinds}
    rounds = {"rq": rq_round, "celery": celery_round}
    for _ in range(repeat):
        for kind in kinds:
            if found[kind].error is None:
                try:
                    found[kind].rounds.append(
                        rounds[kind](redis_url, redis_pid, n, workers, log_dir))
                except (Exception, SystemExit) as exc:  # not KeyboardInterrupt
                    found[kind].error = failure(found[kind].label, exc)
    return found


def failure(what: str, exc: BaseException) -> str:
    """Print a failure in full on stderr; its first line, for the report."""
    text = str(exc) or type(exc).__name__
    print(f"{what} FAILED: {text}", file=sys.stderr, flush=True)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    summary = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return f"{what} FAILED: {summary[:400]}"


def baseline_rows(found: dict[str, Baseline]) -> list[list[str]]:
    items = [b for b in found.values() if b.rounds]
    return [
        ["metric", *(b.label for b in items)],
        ["jobs/s (first dequeue → last finish)", *(f"{b.rate:.0f}" for b in items)],
        [f"CPU ms/job: {WORKERS}", *(f"{b.cpu_ms(WORKERS):.2f}" for b in items)],
        [f"CPU ms/job: {REDIS}", *(f"{b.cpu_ms(REDIS):.2f}" for b in items)],
        ["CPU ms/job: total", *(f"{b.cpu_ms():.2f}" for b in items)],
        ["worker processes", *(str(b.cpu.processes[WORKERS]) for b in items)],
    ]


def heading(n: int, workers: int, repeat: int) -> str:
    return (f"Baselines: N={n} no-op jobs enqueued first, then drained with concurrency "
            f"W={workers} (RQ: {workers} worker processes; Celery: prefork, {workers} pool "
            f"processes) on the same redis-server; best of {repeat} round(s)")


def require(kinds: Sequence[str]) -> None:
    if "celery" in kinds:
        try:
            import celery  # noqa: F401
        except ImportError:
            raise SystemExit("the Celery baseline needs the bench extra: "
                             "uv pip install -e '.[test,bench]' (or --baselines rq)") from None


def parse_kinds(parser: argparse.ArgumentParser, value: str) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip() and k.strip() != "none"]
    if set(kinds) - set(KINDS):
        parser.error(f"--baselines: choose from {', '.join(KINDS)} (or none)")
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="jobs per round (default 1000)")
    parser.add_argument("--workers", type=int, default=2,
                        help="RQ worker processes; Celery concurrency (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--baselines", default=",".join(KINDS),
                        help="comma-separated: rq, celery (default both)")
    args = parser.parse_args()
    kinds = parse_kinds(parser, args.baselines)
    if not kinds or min(args.n, args.workers, args.repeat) < 1:
        parser.error("need a baseline, and --n, --workers, --repeat of at least 1")
    require(kinds)
    started: list[ManagedProcess] = []
    with process_logs("bench-baselines-") as logs:
        try:
            with recording(started):
                server, url = start_redis(logs.path)
                found = run_baselines(kinds, url, server.pid, args.n, args.workers,
                                      args.repeat, logs.path)
        finally:
            stop_all(started)
        errors = [b.error for b in found.values() if b.error]
        logs.ok = not errors
    if any(b.rounds for b in found.values()):
        print_table(heading(args.n, args.workers, args.repeat), baseline_rows(found))
    for error in errors:
        print(error)
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
