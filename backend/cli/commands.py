"""The command-line client: ``python -m backend`` (or ``taskbroker``).

    taskbroker login                       # asks your password, keeps an API token
    taskbroker submit simulate -t 5 --watch
    taskbroker submit-many jobs.jsonl      # one JobExecutionRequest per line, in batches
    taskbroker rerun <job-id> --watch
    taskbroker watch <job-id>
    taskbroker list --status running
    taskbroker list --json                 # for scripts: a JSON array (also show/submit --json)
    taskbroker cancel <job-id>
    taskbroker webhooks rotate-secret      # your webhook signing secret, shown once
    taskbroker users create alice          # operators: talks to the data service
    echo "$PW" | taskbroker login -u alice --password-stdin   # no TTY needed

Global options come before the command: ``taskbroker --api-url URL --token T list``.
The token is, in order: ``--token``, ``TASKBROKER_TOKEN``, the one ``login`` kept (in
the user's config directory, mode 0600, per kernel URL).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import msgspec
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from backend.jobs import (
    MAX_BATCH_JOBS,
    TERMINAL_STATUSES,
    BatchResponse,
    Job,
    JobStatus,
    JobSummaryPage,
    SubmitResponse,
)
from backend.settings import get_settings

app = typer.Typer(help="Submit jobs to taskbroker and follow them.", no_args_is_help=True,
                  add_completion=False)
users_app = typer.Typer(help="Manage users (operators: talks to the data service with "
                        "DATA_SERVICE_URL and DATA_SERVICE_TOKEN).", no_args_is_help=True)
app.add_typer(users_app, name="users")
webhooks_app = typer.Typer(help="Your webhook signing secret.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
console = Console()
err = Console(stderr=True)


@dataclass
class Target:
    api_url: str
    token: str | None


def _credentials_file() -> Path:
    return Path(typer.get_app_dir("taskbroker")) / "credentials.json"


def _saved_tokens() -> dict[str, dict[str, str]]:
    path = _credentials_file()
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save_tokens(tokens: dict[str, dict[str, str]]) -> Path:
    path = _credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(tokens, out, indent=2)
    path.chmod(0o600)
    return path


@app.callback()
def main_options(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option(
        "--api-url", help="Kernel API (default API_URL).")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", help="API token (default TASKBROKER_TOKEN, else the one `login` kept).",
        show_default=False)] = None,
) -> None:
    settings = get_settings().local
    url = (api_url or settings.api_url).rstrip("/")
    token = token or settings.taskbroker_token or _saved_tokens().get(url, {}).get("token")
    ctx.obj = Target(api_url=url, token=token)


def _client(ctx: typer.Context) -> httpx.Client:
    target: Target = ctx.obj
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    return httpx.Client(base_url=target.api_url, timeout=15.0, headers=headers)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    if not isinstance(body, dict):
        return str(body)
    # A problem (docs/errors.md): its detail, and each field it names that the detail
    # does not already say.
    message = str(body.get("detail") or body.get("title") or body)
    errors = body.get("errors")
    if isinstance(errors, list):
        named = [f"{item.get('field')}: {item.get('message')}" for item in errors
                 if isinstance(item, dict) and item.get("message")
                 and item.get("message") not in message]
        if named:
            message += " (" + "; ".join(named) + ")"
    return message


def _exit_if_not_signed_in(response: httpx.Response) -> None:
    if response.status_code == 401:
        err.print(f"[red]401: {_message(response)}[/red]\nsign in with `taskbroker login` "
                  "(or give --token / TASKBROKER_TOKEN)")
        raise typer.Exit(4)


def _call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach the kernel API at {http.base_url}: {exc}[/red]")
        raise typer.Exit(3) from exc
    _exit_if_not_signed_in(response)
    if response.status_code >= 400:
        err.print(f"[red]{response.status_code}: {_message(response)}[/red]")
        raise typer.Exit(2)
    return response


def _parse_params(params_json: str | None, pairs: list[str]) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params") from exc
        if not isinstance(loaded, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--params")
        params.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params or None


JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the API's answer as JSON (nothing else on standard output).")]


def _print_json(data: Any) -> None:
    """JSON on standard output: highlighted on a terminal, plain (and whole) when piped."""
    if console.is_terminal:
        console.print_json(data=data)
    else:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        sys.stdout.flush()


def _print_table(table: Table) -> None:
    """A table fitted to the terminal; when piped (no terminal), as wide as its content, so
    no id is cut and no column dropped whatever COLUMNS says (`taskbroker list | grep`)."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(width=100_000), table).maximum
    Console(width=max(natural, 20), no_color=console.no_color, highlight=False,
            force_terminal=False).print(table)


def _password_from_stdin() -> str:
    """One line of standard input (like `docker login --password-stdin`)."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        err.print("[red]--password-stdin: standard input gave no password[/red]")
        raise typer.Exit(2)
    return line


PasswordStdinOption = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input "
                             "(for scripts: no terminal, no password on the command line).")]


# -- signing in ---------------------------------------------------------------------------
@app.command()
def login(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option("--user", "-u", help="Your user name.")] = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Sign in: makes an API token for this machine and keeps it (mode 0600). Asks the
    password, or reads it from standard input with --password-stdin (then -u is needed)."""
    target: Target = ctx.obj
    if password_stdin:
        if not username:
            raise typer.BadParameter("--password-stdin needs --user", param_hint="--user")
        password = _password_from_stdin()
    else:
        username = username or typer.prompt("User name")
        password = typer.prompt("Password", hide_input=True)
    with httpx.Client(base_url=target.api_url, timeout=15.0) as http:
        issued = _call(http, "POST", "/api/v1/auth/token", json={
            "username": username, "password": password,
            "name": f"cli@{socket.gethostname()}"[:100]}).json()
    tokens = _saved_tokens()
    tokens[target.api_url] = {"token": issued["token"], "id": issued["id"],
                              "username": username}
    path = _save_tokens(tokens)
    console.print(f"signed in as {username} at {target.api_url} (token kept in {path})",
                  soft_wrap=True)


@app.command()
def logout(ctx: typer.Context) -> None:
    """Revoke the token `login` kept for this kernel, and forget it."""
    target: Target = ctx.obj
    tokens = _saved_tokens()
    saved = tokens.pop(target.api_url, None)
    if saved is None:
        console.print(f"not signed in at {target.api_url}")
        return
    with httpx.Client(base_url=target.api_url, timeout=15.0,
                      headers={"Authorization": f"Bearer {saved['token']}"}) as http:
        try:
            http.delete(f"/api/v1/tokens/{saved['id']}")
        except httpx.TransportError as exc:
            err.print(f"[yellow]could not revoke the token at the kernel: {exc}[/yellow]")
    _save_tokens(tokens)
    console.print(f"signed out of {target.api_url}")


@app.command()
def whoami(ctx: typer.Context) -> None:
    """Who the kernel takes you for."""
    with _client(ctx) as http:
        me = _call(http, "GET", "/api/v1/auth/me").json()
    console.print(f"{me['username']} ({me['role']}, by {me['via']})")


# -- jobs ---------------------------------------------------------------------------------
@app.command()
def submit(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="Task name (see `tasks`).")],
    user: Annotated[str | None, typer.Option(
        "--user", "-u", help="Admins: submit for this user (default: you).")] = None,
    estimated_time: Annotated[float, typer.Option("--estimated-time", "-t", min=0)] = 1.0,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    executor: Annotated[str | None, typer.Option("--executor", "-e")] = None,
    params: Annotated[str | None, typer.Option("--params", help="Params as a JSON object.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE")] = None,
    run_at: Annotated[str | None, typer.Option(
        "--run-at", help="Start no earlier than this ISO 8601 time with a zone, e.g. "
                         "2026-12-01T08:00:00+01:00.")] = None,
    delay: Annotated[float | None, typer.Option(
        "--delay", min=0, help="Start no earlier than this many seconds from now.")] = None,
    callback_url: Annotated[str | None, typer.Option(
        "--callback-url", help="POST the finished job here (a host the server allows).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        "--idempotency-key", "-k", help="Submitting again with the same key gives the same "
                                        "job instead of a new one.")] = None,
    watch_job: Annotated[bool, typer.Option("--watch", "-w", help="Follow it to the end.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a job; prints its id (and follows it with --watch). With --json: the API's
    answer ({"status", "job_id"}), or with --watch the finished job."""
    body: dict[str, Any] = {"job_name": task, "estimated_time": estimated_time}
    optional = {"user_id": user, "description": description, "run_at": run_at, "delay": delay,
                "callback_url": callback_url}
    body |= {key: value for key, value in optional.items() if value is not None}
    parsed = _parse_params(params, param or [])
    if parsed is not None:
        body["params"] = parsed
    query = {"executor": executor} if executor else {}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with _client(ctx) as http:
        response = _call(http, "POST", "/api/v1/job_executor/async", json=body, params=query,
                         headers=headers)
        job_id = msgspec.json.decode(response.content, type=SubmitResponse).job_id
        if not as_json:
            console.print(job_id)
        elif not watch_job:
            _print_json(response.json())
        if watch_job:
            raise typer.Exit(_watch(http, job_id, as_json=as_json))


def _watch(http: httpx.Client, job_id: str, interval: float = 0.5, as_json: bool = False) -> int:
    """Follow a job to its end; 0 if it succeeded. With as_json the progress bar goes to
    standard error and the finished job, as the API gives it, to standard output."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err if as_json else console, transient=False) as bar:
        handle = bar.add_task(job_id, total=100)
        while True:
            response = _call(http, "GET", f"/api/v1/jobs/{job_id}")
            job = msgspec.json.decode(response.content, type=Job)
            bar.update(handle, completed=job.progress,
                       description=f"{job.name} {job_id[-6:]} [{job.status}]")
            if job.status in TERMINAL_STATUSES:
                break
            time.sleep(interval)
    if as_json:
        _print_json(response.json())
        return 0 if job.status == JobStatus.SUCCEEDED else 1
    if job.status == JobStatus.SUCCEEDED:
        console.print_json(data=job.result)
        return 0
    reason = job.error or ("cancelled before it finished" if job.status == JobStatus.CANCELLED
                           else "no reason recorded")
    console.print(f"[red]{job.status}[/red]: {reason} (attempts: {job.attempts})")
    return 1


@app.command()
def watch(ctx: typer.Context, job_id: str, as_json: JsonOption = False) -> None:
    """Follow a job with a progress bar until it ends; exit 0 only if it succeeded. With
    --json: the bar on standard error, the finished job as JSON on standard output."""
    with _client(ctx) as http:
        raise typer.Exit(_watch(http, job_id, as_json=as_json))


@app.command()
def show(ctx: typer.Context, job_id: str, as_json: JsonOption = False) -> None:
    """Print one job as JSON, as the API gives it (--json: the same, for symmetry)."""
    del as_json  # show's output is JSON either way
    with _client(ctx) as http:
        _print_json(_call(http, "GET", f"/api/v1/jobs/{job_id}").json())


@app.command(name="list")
def list_jobs(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(
        "--user", "-u", help="Admins: this user's jobs (default: yours).")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Admins: every user's jobs.")] = False,
    status: Annotated[JobStatus | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100)] = 20,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON array of the jobs, as the API lists them.")] = False,
) -> None:
    """List jobs, newest first: a table (whole ids, never cut), or --json."""
    query: dict[str, Any] = {"limit": limit}
    if user:
        query["user_id"] = user
    if all_users:
        query["all"] = "true"
    if status:
        query["status"] = status.value
    with _client(ctx) as http:
        response = _call(http, "GET", "/api/v1/jobs", params=query)
    if as_json:
        _print_json(response.json()["items"])
        return
    page = msgspec.json.decode(response.content, type=JobSummaryPage)
    whose = "every user" if all_users else (user or "you")
    table = Table(title=f"{whose}: {len(page.items)} of {page.total} jobs")
    # The id is what `show`, `watch` and `cancel` take: never cut, never wrapped.
    table.add_column("id", no_wrap=True, min_width=24)
    for name in ("task", "status", "progress", "created (UTC)", "attempts"):
        table.add_column(name)
    if all_users or user:
        table.add_column("user")
    for job in page.items:
        row = [job.id, job.name, str(job.status), f"{job.progress:.0f}%",
               job.created_at.strftime("%Y-%m-%d %H:%M:%S"), str(job.attempts)]
        if all_users or user:
            row.append(job.user_id)
        table.add_row(*row)
    _print_table(table)


@app.command()
def rerun(
    ctx: typer.Context,
    job_id: str,
    watch_job: Annotated[bool, typer.Option("--watch", "-w", help="Follow it to the end.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a finished job again (same task, executor, params); prints the new job's id
    (--json: as submit --json)."""
    with _client(ctx) as http:
        response = _call(http, "POST", f"/api/v1/jobs/{job_id}/rerun")
        new_id = msgspec.json.decode(response.content, type=SubmitResponse).job_id
        if not as_json:
            console.print(new_id)
        elif not watch_job:
            _print_json(response.json())
        if watch_job:
            raise typer.Exit(_watch(http, new_id, as_json=as_json))


def _read_jobs(source: typer.FileText) -> tuple[list[tuple[int, Any]], list[str]]:
    """(line number, JSON object) of each job line, and the lines that are not one."""
    jobs: list[tuple[int, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not sent: not JSON ({exc})")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {number}: not sent: a job is a JSON object")
            continue
        jobs.append((number, item))
    return jobs, problems


def _batch_outcome(response: httpx.Response, lines: list[int]) -> tuple[list[str], int]:
    """One printed line per job of a batch, and how many were accepted."""
    if response.status_code >= 400 and response.status_code != 207:
        why = f"refused ({response.status_code}): {_message(response)}"
        return [f"line {line}: {why}" for line in lines], 0
    answer = msgspec.json.decode(response.content, type=BatchResponse)
    printed = []
    for result in answer.results:
        line = lines[result.index]
        if result.job_id is not None:
            printed.append(f"line {line}: {result.job_id}")
        else:
            printed.append(f"line {line}: refused ({result.status}): {result.detail}")
    return printed, answer.accepted


@app.command("submit-many")
def submit_many(
    ctx: typer.Context,
    source: Annotated[typer.FileText, typer.Argument(
        help="JSON lines: one job per line as the submit's body (job_name, estimated_time, "
             "params, ...; optionally executor). '-' reads standard input.")],
    executor: Annotated[str | None, typer.Option(
        "--executor", "-e", help="Executor of the jobs that name none.")] = None,
) -> None:
    """Submit many jobs, in batches of up to 100; prints the job id (or why it was
    refused) of each line. Exit 0 only if every job was accepted."""
    jobs, problems = _read_jobs(source)
    for problem in problems:
        console.print(problem, highlight=False)
    accepted = 0
    query = {"executor": executor} if executor else {}
    with _client(ctx) as http:
        for start in range(0, len(jobs), MAX_BATCH_JOBS):
            chunk = jobs[start:start + MAX_BATCH_JOBS]
            try:
                response = http.post("/api/v1/jobs/batch", params=query,
                                     json={"jobs": [item for _, item in chunk]})
            except httpx.TransportError as exc:
                err.print(f"[red]cannot reach the kernel API at {http.base_url}: {exc}[/red]")
                raise typer.Exit(3) from exc
            _exit_if_not_signed_in(response)
            printed, count = _batch_outcome(response, [line for line, _ in chunk])
            accepted += count
            for line in printed:
                console.print(line, highlight=False, soft_wrap=True)
    total = len(jobs) + len(problems)
    if accepted < total:
        err.print(f"{total - accepted} of {total} jobs were not accepted")
        raise typer.Exit(2)


@app.command()
def cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a job that has not finished."""
    with _client(ctx) as http:
        job = msgspec.json.decode(_call(http, "POST", f"/api/v1/jobs/{job_id}/cancel").content,
                                  type=Job)
    console.print(f"{job.id} {job.status}")


@app.command()
def tasks(ctx: typer.Context) -> None:
    """The tasks the workers can run."""
    with _client(ctx) as http:
        for item in _call(http, "GET", "/api/v1/tasks").json():
            console.print(f"[bold]{item['name']}[/bold]  {item['description']}", soft_wrap=True)


# -- webhooks ------------------------------------------------------------------------------
@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(ctx: typer.Context) -> None:
    """Make or replace your webhook signing secret (printed once).

    Deliveries are signed with the new one within 30 s; the old one then verifies nothing.
    """
    with _client(ctx) as http:
        answer = _call(http, "POST", "/api/v1/webhooks/secret").json()
    console.print(answer["secret"], soft_wrap=True)
    err.print("give it to your receivers now: it is not shown again")


@webhooks_app.command("secret")
def webhooks_secret(ctx: typer.Context) -> None:
    """Whether you have a webhook secret, and when it was made (never the secret)."""
    with _client(ctx) as http:
        state = _call(http, "GET", "/api/v1/webhooks/secret").json()
    if state["exists"]:
        console.print(f"made or rotated {state['rotated_at'][:19].replace('T', ' ')} UTC")
    else:
        console.print("none yet: `taskbroker webhooks rotate-secret` makes one")


# -- users (operators) ----------------------------------------------------------------------
def _store() -> httpx.Client:
    from backend.local.supervisor import (
        LocalSecrets,  # the launcher's modules: only for these commands
    )

    settings = get_settings()
    api = settings.api
    # Beside a local run (`make run`), its own token under DATA_DIR serves.
    token = api.data_service_token or str(
        LocalSecrets.kept(settings.local.data_dir).get("data_service_token") or "")
    if not token:
        err.print("[red]set DATA_SERVICE_TOKEN (and DATA_SERVICE_URL) to manage users[/red]")
        raise typer.Exit(2)
    return httpx.Client(base_url=api.data_service_url.rstrip("/"), timeout=30.0,
                        headers={"X-Service-Token": token})


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return _password_from_stdin()
    return typer.prompt("New password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def users_create(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Give it the admin role.")] = False,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Create a user (asks for the password, or reads it with --password-stdin)."""
    password = _new_password(password_stdin)
    with _store() as http:
        _call(http, "POST", "/users", json={"username": username,
                                            "password": password,
                                            "role": "admin" if admin else "user"})
    console.print(f"created {username}{' (admin)' if admin else ''}")


@users_app.command("list")
def users_list() -> None:
    """Every user, with role and access."""
    with _store() as http:
        users = _call(http, "GET", "/users").json()
    table = Table("user", "role", "access", "created (UTC)")
    for user in users:
        table.add_row(user["username"], user["role"],
                      "disabled" if user["disabled"] else "enabled",
                      (user.get("created_at") or "")[:19].replace("T", " "))
    _print_table(table)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Refuse a user from now on: ends their sessions and revokes their API tokens (enabling
    brings none back). An identity provider's user is named oidc:<claim>."""
    with _store() as http:
        _call(http, "PATCH", f"/users/{username}", json={"disabled": True})
    console.print(f"disabled {username}")


@users_app.command("enable")
def users_enable(username: str) -> None:
    """Let a disabled user in again."""
    with _store() as http:
        _call(http, "PATCH", f"/users/{username}", json={"disabled": False})
    console.print(f"enabled {username}")


@users_app.command("sign-out")
def users_sign_out(username: str) -> None:
    """End every web session of a user (API tokens stay: revoke them one by one)."""
    with _store() as http:
        _call(http, "PATCH", f"/users/{username}", json={"end_sessions": True})
    console.print(f"signed {username} out everywhere")


@users_app.command("set-password")
def users_set_password(
    username: str,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Set a user's password (asks for it, or reads it with --password-stdin); ends their
    sessions and revokes their API tokens."""
    password = _new_password(password_stdin)
    with _store() as http:
        _call(http, "PATCH", f"/users/{username}", json={"password": password})
    console.print(f"password of {username} changed")


def main() -> None:
    app()
