"""The command-line client of the kernel API: ``python -m backend`` (or ``taskbroker``).

    python -m backend submit simulate --user alice --estimated-time 5 --watch
    python -m backend watch <job-id>
    python -m backend list --user alice --status running
    python -m backend cancel <job-id>
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import httpx
import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from backend.jobs import TERMINAL_STATUSES, Job, JobPage, JobStatus, SubmitResponse
from backend.settings import get_settings

app = typer.Typer(help="Submit jobs to taskbroker and follow them.", no_args_is_help=True,
                  add_completion=False)
console = Console()
err = Console(stderr=True)

ApiUrl = Annotated[str | None, typer.Option("--api-url", help="Kernel API (default API_URL).")]


def _client(api_url: str | None) -> httpx.Client:
    return httpx.Client(base_url=(api_url or get_settings().local.api_url).rstrip("/"),
                        timeout=15.0)


def _call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach the kernel API at {http.base_url}: {exc}[/red]")
        raise typer.Exit(3) from exc
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = body.get("detail", body)
            extra = body.get("extra")
            message = f"{detail} {extra}" if extra else str(detail)
        except ValueError:
            message = response.text
        err.print(f"[red]{response.status_code}: {message}[/red]")
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


@app.command()
def submit(
    task: Annotated[str, typer.Argument(help="Task name (see `tasks`).")],
    user: Annotated[str, typer.Option("--user", "-u", help="Your user id.")] = "cli",
    estimated_time: Annotated[float, typer.Option("--estimated-time", "-t", min=0)] = 1.0,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    executor: Annotated[str | None, typer.Option("--executor", "-e")] = None,
    params: Annotated[str | None, typer.Option("--params", help="Params as a JSON object.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE")] = None,
    watch_job: Annotated[bool, typer.Option("--watch", "-w", help="Follow it to the end.")] = False,
    api_url: ApiUrl = None,
) -> None:
    """Submit a job; prints its id (and follows it with --watch)."""
    body: dict[str, Any] = {"job_name": task, "user_id": user, "estimated_time": estimated_time}
    if description:
        body["description"] = description
    parsed = _parse_params(params, param or [])
    if parsed is not None:
        body["params"] = parsed
    query = {"executor": executor} if executor else {}
    with _client(api_url) as http:
        response = _call(http, "POST", "/api/v1/job_executor/async", json=body, params=query)
        job_id = msgspec.json.decode(response.content, type=SubmitResponse).job_id
        console.print(job_id)
        if watch_job:
            raise typer.Exit(_watch(http, job_id))


def _watch(http: httpx.Client, job_id: str, interval: float = 0.5) -> int:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        handle = bar.add_task(job_id, total=100)
        while True:
            job = msgspec.json.decode(_call(http, "GET", f"/api/v1/jobs/{job_id}").content,
                                      type=Job)
            bar.update(handle, completed=job.progress,
                       description=f"{job.name} {job_id[-6:]} [{job.status}]")
            if job.status in TERMINAL_STATUSES:
                break
            time.sleep(interval)
    if job.status == JobStatus.SUCCEEDED:
        console.print_json(data=job.result)
        return 0
    console.print(f"[red]{job.status}[/red]: {job.error or ''} (attempts: {job.attempts})")
    return 1


@app.command()
def watch(job_id: str, api_url: ApiUrl = None) -> None:
    """Follow a job with a progress bar until it ends; exit 0 only if it succeeded."""
    with _client(api_url) as http:
        raise typer.Exit(_watch(http, job_id))


@app.command()
def show(job_id: str, api_url: ApiUrl = None) -> None:
    """Print one job as JSON."""
    with _client(api_url) as http:
        console.print_json(_call(http, "GET", f"/api/v1/jobs/{job_id}").text)


@app.command(name="list")
def list_jobs(
    user: Annotated[str, typer.Option("--user", "-u")] = "cli",
    status: Annotated[JobStatus | None, typer.Option("--status", "-s")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100)] = 20,
    api_url: ApiUrl = None,
) -> None:
    """List a user's jobs, newest first."""
    query: dict[str, Any] = {"user_id": user, "limit": limit}
    if status:
        query["status"] = status.value
    with _client(api_url) as http:
        page = msgspec.json.decode(_call(http, "GET", "/api/v1/jobs", params=query).content,
                                   type=JobPage)
    table = Table("id", "task", "status", "progress", "created (UTC)", "attempts",
                  title=f"{user}: {len(page.items)} of {page.total} jobs")
    for job in page.items:
        table.add_row(job.id, job.name, str(job.status), f"{job.progress:.0f}%",
                      job.created_at.strftime("%Y-%m-%d %H:%M:%S"), str(job.attempts))
    console.print(table)


@app.command()
def cancel(job_id: str, api_url: ApiUrl = None) -> None:
    """Cancel a job that has not finished."""
    with _client(api_url) as http:
        job = msgspec.json.decode(_call(http, "POST", f"/api/v1/jobs/{job_id}/cancel").content,
                                  type=Job)
    console.print(f"{job.id} {job.status}")


@app.command()
def tasks(api_url: ApiUrl = None) -> None:
    """The tasks the workers can run."""
    with _client(api_url) as http:
        for item in _call(http, "GET", "/api/v1/tasks").json():
            console.print(f"[bold]{item['name']}[/bold]  {item['description']}")


def main() -> None:
    app()
