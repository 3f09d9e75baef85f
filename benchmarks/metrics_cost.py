"""What the Prometheus metrics cost: the whole system with metrics on and off, same run.

    python benchmarks/metrics_cost.py [--n 300] [--concurrency 8] [--workers 2]
                                      [--repeat 2] [--pairs 2] [--scrape-every 5]

The system of ``pipeline.py`` (Redis Stream queue, every process real, default settings)
is started ``--pairs`` times with ``METRICS_ENABLED=false`` and as many times with
metrics on, alternating (off, on, off, on, ...) so that a machine that gets busier or
quieter mid-run weighs on both alike. With metrics on, every ``/metrics`` (kernel, data
service, worker executor, dispatcher) is scraped every ``--scrape-every`` seconds, as
Prometheus would (it scrapes every 15 s by default: this is the harsher case). Each
start runs ``--repeat`` rounds of N ``echo`` submits with ``--concurrency`` in flight,
timed from the first submit to the last ``finished_at``.

The table shows each mode's best end-to-end jobs/s, submit p50 and CPU per job (every
process but the load generator), and on / off. The budget: metrics cost at most 5 % of
end-to-end jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.common import print_table, process_logs, recording, stop_all
from benchmarks.cpu import CpuMeter
from benchmarks.pipeline import LOAD, Result, measure, start_system
from tests.services import ManagedProcess

BUDGET = 0.05  # the most end-to-end throughput metrics may cost


def scrape_until(urls: list[str], every: float, stop: threading.Event) -> None:
    """Read every endpoint each ``every`` seconds (what Prometheus does) until ``stop``."""
    with httpx.Client(timeout=10) as http:
        while not stop.wait(every):
            for url in urls:
                answer = http.get(url)
                if answer.status_code != 200:
                    raise SystemExit(f"{url} answered {answer.status_code}")


def run_once(metrics_on: bool, args: argparse.Namespace, log_dir: Path) -> Result:
    result = Result()
    started: list[ManagedProcess] = []
    processes: dict[str, ManagedProcess] = {}
    settings = {"METRICS_ENABLED": "true" if metrics_on else "false"}
    try:
        with recording(started):
            api_url, store_url = start_system("redis", args.workers, log_dir, processes,
                                              settings)
            stop = threading.Event()
            scraper = None
            if metrics_on:
                env = processes["kernel"]._env
                urls = [f"{api_url}/metrics", f"{store_url}/metrics",
                        f"http://127.0.0.1:{env['METRICS_PORT']}/metrics",
                        f"http://127.0.0.1:{env['DISPATCHER_METRICS_PORT']}/metrics"]
                scraper = threading.Thread(target=scrape_until,
                                           args=(urls, args.scrape_every, stop), daemon=True)
                scraper.start()
            meter = CpuMeter({name: proc.pid for name, proc in processes.items()},
                             this_process=LOAD)
            try:
                asyncio.run(measure(api_url, store_url, meter, args.n, args.concurrency,
                                    args.repeat, result.rounds))
            finally:
                stop.set()
                if scraper is not None:
                    scraper.join(30)
        return result
    finally:
        stop_all(started)


def best(results: list[Result]) -> Result:
    merged = Result()
    for result in results:
        merged.rounds += result.rounds
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="jobs per round (default 300)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="requests in flight (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers (default 2)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds per start; the best counts (default 2)")
    parser.add_argument("--pairs", type=int, default=2,
                        help="starts of each mode, alternating (default 2)")
    parser.add_argument("--scrape-every", type=float, default=5.0,
                        help="seconds between two scrapes of every /metrics (default 5)")
    args = parser.parse_args()
    if min(args.n, args.concurrency, args.workers, args.repeat, args.pairs) < 1:
        parser.error("--n, --concurrency, --workers, --repeat and --pairs must be at least 1")
    runs: dict[bool, list[Result]] = {False: [], True: []}
    with process_logs("bench-metrics-") as logs:
        for _ in range(args.pairs):
            for metrics_on in (False, True):
                runs[metrics_on].append(run_once(metrics_on, args, logs.path))
        logs.ok = True
    off, on = best(runs[False]), best(runs[True])
    ratio = on.e2e_rate / off.e2e_rate
    print_table(
        f"Metrics on vs off: N={args.n} echo jobs, concurrency C={args.concurrency}, "
        f"W={args.workers} workers, Redis Stream queue, best of {args.pairs * args.repeat} "
        f"rounds per mode ({args.pairs} starts each, alternating); scraped every "
        f"{args.scrape_every:g} s when on",
        [["metric", "metrics off", "metrics on", "on ÷ off"],
         ["end to end jobs/s", f"{off.e2e_rate:.0f}", f"{on.e2e_rate:.0f}", f"{ratio:.2f}x"],
         ["submit p50 ms", f"{off.submit_p50:.1f}", f"{on.submit_p50:.1f}",
          f"{on.submit_p50 / off.submit_p50:.2f}x"],
         ["CPU ms per job (all but the load)", f"{off.cpu_ms(system_only=True):.2f}",
          f"{on.cpu_ms(system_only=True):.2f}",
          f"{on.cpu_ms(system_only=True) / off.cpu_ms(system_only=True):.2f}x"]])
    verdict = "within" if ratio >= 1 - BUDGET else "OVER"
    cost = (f"metrics cost {100 * (1 - ratio):.1f} % of end-to-end jobs/s" if ratio < 1 else
            "metrics on was no slower than off (their cost is below this run's noise)")
    print(f"\n{cost}: {verdict} the {100 * BUDGET:.0f} % budget", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
