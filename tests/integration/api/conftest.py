"""The kernel over real parts: the data service as a process over nx-27017, a real queue.

The kernel itself runs in-process (its app built from environment settings, as the
process would build it) unless a test needs a real server (event streams, SIGTERM).
Every kernel gets a STANDARD queue of its own name, and every test its own user id,
so tests never see each other's messages or jobs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from backend.api.app import create_app
from backend.local.embedded import free_port
from backend.queues import StandardQueue, make_queue
from backend.settings import Settings
from tests.services import (
    SERVICE_HEADERS,
    TEST_PASSWORD,
    TEST_SECRETS,
    ManagedProcess,
    create_user,
    python_module,
)

BACKENDS = ["redis", "sqs"]


def closed_url(scheme: str = "http") -> str:
    """A URL where nothing listens (connections are refused at once)."""
    return f"{scheme}://127.0.0.1:{free_port()}"


@pytest.fixture(scope="package")
def data_service_database() -> str:
    """The MongoDB database (in ``mongo_url``) the data service keeps its ``jobs`` in."""
    return f"api_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="package")
def data_service(mongo_url: str, data_service_database: str, log_dir: Path) -> Iterator[str]:
    """``python -m backend.store`` on a free port over its own database; yields its URL."""
    port = free_port()
    env = {"MONGODB_URL": mongo_url, "DATABASE_NAME": data_service_database,
           "COLLECTION_NAME": "jobs", "MONGODB_TIMEOUT_MS": "2000"}
    proc = python_module(f"store-{port}", "backend.store", log_dir, env, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    proc.start().wait_http(f"{url}/readyz", timeout=60)
    yield url
    proc.stop()


@pytest.fixture
async def store(data_service: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client of the data service, to check what the kernel recorded."""
    async with httpx.AsyncClient(base_url=data_service, timeout=10,
                                 headers=SERVICE_HEADERS) as client:
        yield client


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The queue backend; a test narrows it with ``@pytest.mark.parametrize("backend", ...)``."""
    return request.param


@pytest.fixture
def kernel_env(backend: str, data_service: str, request: pytest.FixtureRequest,
               tmp_path: Path) -> dict[str, str]:
    """The environment of a kernel on working parts, as a deployment would set it."""
    server = request.getfixturevalue(f"{backend}_url")
    return {
        **TEST_SECRETS,
        "DATA_SERVICE_URL": data_service,
        "DATA_SERVICE_DEADLINE": "3",
        "QUEUE_BACKEND": backend,
        "STANDARD_QUEUE_NAME": f"api-{uuid.uuid4().hex[:12]}",
        "QUEUE_WAIT_SECONDS": "1",
        "QUEUE_CREATE": "true",
        # Redis holds the stop markers and the limits with either queue backend.
        "REDIS_URL": server if backend == "redis" else request.getfixturevalue("redis_url"),
        "SQS_ENDPOINT_URL": server if backend == "sqs" else "",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "EXECUTORS": "standard,priority",
        "FRONTEND_DIST": str(tmp_path / "no-web-app"),
        "SSE_POLL_INTERVAL": "0.1",
    }


@dataclass
class Kernel:
    """A kernel app in this process; ``http`` is signed in as the test's user."""

    http: httpx.AsyncClient
    settings: Settings
    env: dict[str, str]
    app: Litestar
    stack: AsyncExitStack

    async def submit(self, user: str, name: str = "echo", executor: str | None = None,
                     **fields: object) -> httpx.Response:
        body = {"job_name": name, "user_id": user, "estimated_time": 1, **fields}
        params = {"executor": executor} if executor else {}
        return await self.http.post("/api/v1/job_executor/async", json=body, params=params)

    def break_data_service(self) -> str:
        """From now on this kernel finds its data service down (nothing listens where it
        calls); returns that address. (Who is signed in was looked up when the kernel was
        opened: during the outage it still counts.)"""
        down = closed_url()
        for client in (self.app.state.client, self.app.state.stream_client):
            client.base_url = down
        return down

    async def client(self, token: str | None = None, address: str = "127.0.0.1",
                     **headers: str) -> httpx.AsyncClient:
        """Another client of this kernel (from ``address``): with ``token`` as a bearer, or
        anonymous."""
        if token:
            headers["Authorization"] = f"Bearer {token}"
        transport = httpx.ASGITransport(app=self.app, client=(address, 4321))
        return await self.stack.enter_async_context(httpx.AsyncClient(
            transport=transport, base_url="http://kernel", timeout=60, headers=headers))

    async def sign_in(self, username: str, role: str = "user") -> httpx.AsyncClient:
        """A client signed in (API token) as ``username``, made a user first."""
        create_user(self.env["DATA_SERVICE_URL"], username, role=role)
        anonymous = await self.client()
        answer = await anonymous.post("/api/v1/auth/token", json={
            "username": username, "password": TEST_PASSWORD, "name": "tests"})
        assert answer.status_code == 201, answer.text
        return await self.client(answer.json()["token"])


OpenKernel = Callable[..., Awaitable[Kernel]]


@asynccontextmanager
async def lifespan_in_task(app: Litestar) -> AsyncIterator[None]:
    """Runs the app's startup and shutdown in one task of their own.

    pytest-asyncio tears fixtures down in another task than it set them up in, and the
    lifespan's task group must be left in the task that entered it.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # startup failed: show why
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def open_kernel(kernel_env: dict[str, str], user: str,
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenKernel]:
    """Opens kernels (``kernel_env`` plus overrides), each running its lifespan till the end,
    each with a client signed in as the test's ``user``."""
    async with AsyncExitStack() as stack:

        async def open_(signed_in: bool = True, **overrides: str) -> Kernel:
            env = kernel_env | overrides
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            settings = Settings()  # read from the environment, as the process does
            app = create_app(settings)
            await stack.enter_async_context(lifespan_in_task(app))
            kernel = Kernel(httpx.AsyncClient(), settings, env, app, stack)
            kernel.http = await (kernel.sign_in(user) if signed_in else kernel.client())
            if signed_in:
                assert (await kernel.http.get("/api/v1/auth/me")).status_code == 200
            return kernel

        yield open_


@pytest.fixture
async def kernel(open_kernel: OpenKernel) -> Kernel:
    """A kernel on working parts."""
    return await open_kernel()


@asynccontextmanager
async def queue_of(settings: Settings) -> AsyncIterator[StandardQueue]:
    """A consumer of the kernel's STANDARD queue (what the dispatcher would see)."""
    queue = make_queue(settings)
    await queue.ensure()
    try:
        yield queue
    finally:
        await queue.close()


@pytest.fixture
def kernel_process(kernel_env: dict[str, str], log_dir: Path,
                   processes: list[ManagedProcess],
                   ) -> Callable[..., tuple[str, ManagedProcess]]:
    """Starts ``python -m backend.api --port P`` (env overrides allowed): (URL, process)."""

    def start(**overrides: str) -> tuple[str, ManagedProcess]:
        port = free_port()
        proc = python_module(f"kernel-{port}", "backend.api", log_dir,
                             kernel_env | overrides, "--port", str(port))
        processes.append(proc)
        url = f"http://127.0.0.1:{port}"
        proc.start().wait_http(f"{url}/healthz", timeout=60)
        return url, proc

    return start
