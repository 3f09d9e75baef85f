"""Clients of the data service: async for the kernel, sync for the RQ workers.

Both share the request shapes and the answer handling; only the transport differs.
Transient failures (no connection, 502/503/504) are retried with exponential backoff
until a deadline, then raise :class:`DataServiceError`, which the kernel turns into
a 503.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import tenacity

from backend.errors import DataServiceError, JobNotFoundError, PermanentError, TransitionError
from backend.jobs import CreateJob, Job, JobCreated, JobPage, JobStatus, UpdateJob

log = logging.getLogger(__name__)

T = TypeVar("T")
_TRANSIENT_STATUS = {502, 503, 504}


# A POST that may have reached the server is not sent again: a retry could record the
# job twice. Only failures before the request left (no connection) are safe to repeat.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class DataServiceRefusedError(PermanentError):
    """The data service refused the request (a 4xx other than 404/409); keeps its status."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class _Transient(Exception):
    """A failure worth retrying."""


def _retrying(deadline: float) -> dict[str, Any]:
    return dict(
        stop=tenacity.stop_after_delay(deadline),
        wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.1),
        retry=tenacity.retry_if_exception_type(_Transient),
        reraise=True,
    )


def _may_retry(method: str, exc: httpx.TransportError) -> bool:
    return method != "POST" or isinstance(exc, _UNSENT)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        detail = body.get("detail", body)
        extra = body.get("extra")
        return f"{detail}: {extra}" if extra else str(detail)
    return str(body)


def _conflict(response: httpx.Response) -> TransitionError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return TransitionError(f"conflict: {response.text[:500]}")
    return TransitionError(str(body.get("detail", "conflict")), body.get("current_status"))


def _check(response: httpx.Response, job_id: str | None = None, *,
           method: str = "GET") -> httpx.Response:
    # A 503 means the data service did not take the request (not ready): safe to repeat
    # even for a POST. A 502/504 from a proxy may hide a request that was applied.
    transient = _TRANSIENT_STATUS if method != "POST" else {503}
    if response.status_code in transient:
        raise _Transient(f"data service answered {response.status_code}")
    if response.status_code == 404:
        raise JobNotFoundError(f"job {job_id} not found" if job_id else _detail(response))
    if response.status_code == 409:
        raise _conflict(response)
    if response.status_code >= 500:
        raise DataServiceError(f"data service error {response.status_code}: {_detail(response)}")
    if response.status_code >= 400:
        raise DataServiceRefusedError(f"data service refused: {_detail(response)}",
                                      response.status_code)
    return response


def _decode(response: httpx.Response, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.DecodeError as exc:
        # A body that breaks the contract is the data service's fault, not the caller's.
        raise DataServiceError(f"data service answered an unexpected body: {exc}") from exc


def _list_params(user_id: str, status: JobStatus | None, limit: int, cursor: str | None,
                 offset: int | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = str(status)
    if cursor:
        params["cursor"] = cursor
    if offset is not None:
        params["offset"] = offset
    return f"/job/user/{quote(user_id, safe='')}", params


class DataServiceClient:
    """Async client over one pooled HTTP client; ``start``/``stop`` follow the app's lifespan."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, deadline: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _request(self, method: str, path: str, *, job_id: str | None = None,
                       **kwargs: Any) -> httpx.Response:
        if self._http is None:
            await self.start()
        assert self._http is not None
        try:
            async for attempt in tenacity.AsyncRetrying(**_retrying(self.deadline)):
                with attempt:
                    try:
                        response = await self._http.request(method, path, **kwargs)
                    except httpx.TransportError as exc:
                        if not _may_retry(method, exc):
                            raise DataServiceError(
                                f"data service at {self.base_url} failed mid-request: {exc!r}"
                            ) from exc
                        raise _Transient(f"data service unreachable: {exc!r}") from exc
                    return _check(response, job_id, method=method)
        except _Transient as exc:
            raise DataServiceError(f"data service unavailable at {self.base_url}: {exc}") from exc
        raise AssertionError("unreachable")

    async def create_empty_job(self, job: CreateJob) -> str:
        """Record a new job (status ``created``); returns its id."""
        response = await self._request("POST", "/job/", content=msgspec.json.encode(job),
                                       headers={"content-type": "application/json"})
        return _decode(response, JobCreated).id

    async def get_job(self, job_id: str) -> Job:
        return _decode(await self._request("GET", f"/job/{job_id}", job_id=job_id), Job)

    async def update_job(self, job_id: str, update: UpdateJob) -> Job:
        """Apply ``update``; raises :class:`TransitionError` if the status move is illegal."""
        response = await self._request(
            "PUT", f"/job/{job_id}", job_id=job_id, content=msgspec.json.encode(update),
            headers={"content-type": "application/json"},
        )
        return _decode(response, Job)

    async def delete_job(self, job_id: str) -> None:
        await self._request("DELETE", f"/job/{job_id}", job_id=job_id)

    async def list_jobs(self, user_id: str, *, status: JobStatus | None = None, limit: int = 20,
                        cursor: str | None = None, offset: int | None = None) -> JobPage:
        path, params = _list_params(user_id, status, limit, cursor, offset)
        return _decode(await self._request("GET", path, params=params), JobPage)

    async def stale_jobs(self, status: JobStatus, *, older_than: float,
                         limit: int = 100) -> list[Job]:
        """Jobs of every user in ``status`` not updated for ``older_than`` seconds, oldest first.

        The data service measures the age on its own clock.
        """
        params = {"status": str(status), "older_than": older_than, "limit": limit}
        return _decode(await self._request("GET", "/job/stale", params=params), list[Job])

    async def ready(self) -> bool:
        """Whether the data service answers its ``/readyz`` (one try, no retries)."""
        if self._http is None:
            await self.start()
        assert self._http is not None
        try:
            response = await self._http.get("/readyz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


class SyncDataServiceClient:
    """The same calls, blocking, for RQ workers (which run tasks synchronously)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, deadline: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, job_id: str | None = None,
                 **kwargs: Any) -> httpx.Response:
        try:
            for attempt in tenacity.Retrying(**_retrying(self.deadline)):
                with attempt:
                    try:
                        response = self._http.request(method, path, **kwargs)
                    except httpx.TransportError as exc:
                        if not _may_retry(method, exc):
                            raise DataServiceError(
                                f"data service at {self.base_url} failed mid-request: {exc!r}"
                            ) from exc
                        raise _Transient(f"data service unreachable: {exc!r}") from exc
                    return _check(response, job_id, method=method)
        except _Transient as exc:
            raise DataServiceError(f"data service unavailable at {self.base_url}: {exc}") from exc
        raise AssertionError("unreachable")

    def create_empty_job(self, job: CreateJob) -> str:
        response = self._request("POST", "/job/", content=msgspec.json.encode(job),
                                 headers={"content-type": "application/json"})
        return _decode(response, JobCreated).id

    def get_job(self, job_id: str) -> Job:
        return _decode(self._request("GET", f"/job/{job_id}", job_id=job_id), Job)

    def update_job(self, job_id: str, update: UpdateJob) -> Job:
        response = self._request(
            "PUT", f"/job/{job_id}", job_id=job_id, content=msgspec.json.encode(update),
            headers={"content-type": "application/json"},
        )
        return _decode(response, Job)

    def list_jobs(self, user_id: str, *, status: JobStatus | None = None, limit: int = 20,
                  cursor: str | None = None, offset: int | None = None) -> JobPage:
        path, params = _list_params(user_id, status, limit, cursor, offset)
        return _decode(self._request("GET", path, params=params), JobPage)
