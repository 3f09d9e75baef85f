"""The client of the data service, for the kernel and the dispatcher's recorder.

One aiohttp session per client (kept-alive connections; aiohttp costs a fraction of the
CPU of httpx per request: benchmarks/http_clients.py). Transient failures (no connection, a
timeout, 502/503/504) are retried with exponential backoff until a deadline, then raise
:class:`DataServiceError`, which the kernel turns into a 503. A request is retried after
it may have reached the server only if repeating it is harmless: every write here is
(creates carry the job id the kernel chose, reports are conditional), except the
seed's create with a server-chosen id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
import tenacity

from backend.accounts import (
    TOKEN_ID_PATTERN,
    Credentials,
    NewUser,
    StoredToken,
    User,
    UserChange,
)
from backend.errors import (
    DataServiceAuthError,
    DataServiceError,
    DataServiceRefusedError,
    DataServiceUnsureError,
    JobNotFoundError,
    NotFoundError,
    TransitionError,
)
from backend.jobs import (
    CreateJob,
    Job,
    JobCreated,
    JobPage,
    JobStatus,
    JobSummaryPage,
    NewJob,
    NewJobs,
    NewJobsAnswer,
    UpdateJob,
)
from backend.problems import FieldError
from backend.reports import Report, ReportBatch, ReportsApplied
from backend.settings import ApiSettings
from backend.store.client_trace import data_service_trace, observed
from backend.webhook_signing import WebhookKey

SERVICE_TOKEN_HEADER = "X-Service-Token"

log = logging.getLogger(__name__)

T = TypeVar("T")
_TRANSIENT_STATUS = {502, 503, 504}
_JSON = {"content-type": "application/json"}


class _Transient(Exception):
    """A failure worth retrying."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


def _retrying(deadline: float) -> dict[str, Any]:
    return dict(
        stop=tenacity.stop_after_delay(deadline),
        wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.1),
        retry=tenacity.retry_if_exception_type(_Transient),
        reraise=True,
    )


def _error_body(body: bytes) -> tuple[str, list[FieldError], int | None]:
    """The detail (a sentence, never a Python repr), the field ``errors`` and the
    ``limit_bytes`` of a problem the data service answered (docs/errors.md)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:500].decode(errors="replace"), [], None
    if not isinstance(decoded, dict):
        return msgspec.json.encode(decoded)[:500].decode(errors="replace"), [], None
    detail = decoded.get("detail")
    if not isinstance(detail, str):
        detail = msgspec.json.encode(decoded)[:500].decode(errors="replace")
    try:
        errors = msgspec.convert(decoded.get("errors") or [], list[FieldError])
    except msgspec.ValidationError:
        errors = []
    limit = decoded.get("limit_bytes")
    return detail, errors, limit if isinstance(limit, int) else None


def _detail(body: bytes) -> str:
    return _error_body(body)[0]


def _conflict(body: bytes) -> TransitionError:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = None
    if not isinstance(decoded, dict):
        return TransitionError(f"conflict: {body[:500].decode(errors='replace')}")
    return TransitionError(str(decoded.get("detail", "conflict")), decoded.get("current_status"))


def _is_token_id(token_id: str) -> bool:
    return re.fullmatch(TOKEN_ID_PATTERN, token_id) is not None


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        # A body that breaks the contract is the data service's fault, not the caller's.
        raise DataServiceError(f"data service answered an unexpected body: {exc}") from exc


class DataServiceClient:
    """Async client over one pooled session; ``start``/``stop`` follow the owner's lifespan."""

    def __init__(self, base_url: str, *, token: str = "", timeout: float = 5.0,
                 deadline: float = 10.0, max_connections: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.max_connections = max_connections
        self._headers = {SERVICE_TOKEN_HEADER: token} if token else {}
        self._json_headers = {**_JSON, **self._headers}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, api: ApiSettings, *, max_connections: int = 100,
                      ) -> DataServiceClient:
        """The client every process makes: DATA_SERVICE_URL, its token and timeouts."""
        return cls(api.data_service_url, token=api.data_service_token,
                   timeout=api.data_service_timeout, deadline=api.data_service_deadline,
                   max_connections=max_connections)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections,
                                               keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                raise_for_status=False, auto_decompress=False,
                # Latency by route, and client spans when tracing is on.
                trace_configs=[data_service_trace()] if observed() else [],
            )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, *, job_id: str | None = None,
                       idempotent: bool = True, body: bytes | None = None,
                       params: dict[str, Any] | None = None) -> bytes:
        if self._session is None:
            await self.start()
        assert self._session is not None
        url = self.base_url + path
        try:
            async for attempt in tenacity.AsyncRetrying(**_retrying(self.deadline)):
                with attempt:
                    return await self._once(method, url, job_id, idempotent, body, params)
        except _Transient as exc:
            error = DataServiceUnsureError if exc.sent and method != "GET" else DataServiceError
            raise error(f"data service unavailable at {self.base_url}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _once(self, method: str, url: str, job_id: str | None, idempotent: bool,
                    body: bytes | None, params: dict[str, Any] | None) -> bytes:
        assert self._session is not None
        sent = False
        try:
            async with self._session.request(method, url, data=body, params=params,
                                             headers=self._json_headers if body is not None
                                             else self._headers) as response:
                sent = True
                status, content = response.status, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            unsent = isinstance(exc, aiohttp.ClientConnectorError)
            if not unsent and not idempotent:
                raise DataServiceUnsureError(
                    f"data service at {self.base_url} failed mid-request: {exc!r}") from exc
            raise _Transient(f"data service unreachable: {exc!r}", sent=not unsent) from exc
        # A 503 means the data service did not take the request (not ready): safe to repeat
        # even when not idempotent. A 502/504 from a proxy may hide a request that was applied.
        if status == 503 or (status in _TRANSIENT_STATUS and idempotent):
            raise _Transient(f"data service answered {status}", sent=sent and status != 503)
        if status == 404:
            if job_id:
                raise JobNotFoundError(f"job {job_id} not found")
            raise NotFoundError(_detail(content))
        if status == 401:
            raise DataServiceAuthError(f"data service refused our service token: "
                                       f"{_detail(content)}")
        if status == 409:
            raise _conflict(content)
        if status >= 500:
            raise DataServiceError(f"data service error {status}: {_detail(content)}")
        if status >= 400:
            detail, errors, limit = _error_body(content)
            raise DataServiceRefusedError(detail, status, errors, limit)
        return content

    # jobs ------------------------------------------------------------------------------
    async def create_jobs(self, jobs: Sequence[NewJob]) -> list[str]:
        """Record jobs under the ids the caller chose; per job ``created`` or ``exists``
        (already recorded: the same request arrived before)."""
        body = msgspec.json.encode(NewJobs(jobs=list(jobs)))
        answer = _decode(await self._request("POST", "/jobs/bulk", body=body), NewJobsAnswer)
        return answer.results

    async def create_empty_job(self, job: CreateJob) -> str:
        """Record a new job (status ``created``) under an id the data service picks."""
        content = await self._request("POST", "/job/", body=msgspec.json.encode(job),
                                      idempotent=False)
        return _decode(content, JobCreated).id

    async def get_job(self, job_id: str) -> Job:
        return _decode(await self._request("GET", f"/job/{job_id}", job_id=job_id), Job)

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs of those ids that exist, in no particular order (one request)."""
        body = msgspec.json.encode({"ids": list(job_ids)})
        return _decode(await self._request("POST", "/jobs/query", body=body), list[Job])

    async def update_job(self, job_id: str, update: UpdateJob) -> Job:
        """Apply ``update``; raises :class:`TransitionError` if the status move is illegal."""
        content = await self._request("PUT", f"/job/{job_id}", job_id=job_id,
                                      body=msgspec.json.encode(update))
        return _decode(content, Job)

    async def delete_job(self, job_id: str) -> None:
        await self._request("DELETE", f"/job/{job_id}", job_id=job_id)

    async def list_jobs(self, user_id: str | None, *, status: JobStatus | None = None,
                        limit: int = 20, cursor: str | None = None,
                        offset: int | None = None) -> JobPage:
        """A page of ``user_id``'s jobs (every user's when None), newest first."""
        params = self._list_params(user_id, status, limit, cursor, offset)
        return _decode(await self._request("GET", "/jobs", params=params), JobPage)

    async def list_summaries(self, user_id: str | None, *, status: JobStatus | None = None,
                             limit: int = 20, cursor: str | None = None,
                             offset: int | None = None) -> JobSummaryPage:
        """:meth:`list_jobs` as a list shows the jobs: no params, no result (the data
        service does not even read them), the error cut short."""
        params = self._list_params(user_id, status, limit, cursor, offset)
        params["summary"] = "true"
        return _decode(await self._request("GET", "/jobs", params=params), JobSummaryPage)

    @staticmethod
    def _list_params(user_id: str | None, status: JobStatus | None, limit: int,
                     cursor: str | None, offset: int | None) -> dict[str, Any]:
        # The user id travels as a query value, so no id (say "..") can change the path.
        params: dict[str, Any] = {"limit": limit}
        if user_id is not None:
            params["user_id"] = user_id
        if status is not None:
            params["status"] = str(status)
        if cursor:
            params["cursor"] = cursor
        if offset is not None:
            params["offset"] = offset
        return params

    async def count_unfinished(self, user_id: str) -> int:
        content = await self._request("GET", "/jobs/unfinished/count",
                                      params={"user_id": user_id})
        return int(msgspec.json.decode(content)["count"])

    async def stale_jobs(self, status: JobStatus, *, older_than: float,
                         limit: int = 100) -> list[Job]:
        """Jobs of every user in ``status`` not updated for ``older_than`` seconds, oldest first.

        The data service measures the age on its own clock.
        """
        params = {"status": str(status), "older_than": older_than, "limit": limit}
        return _decode(await self._request("GET", "/job/stale", params=params), list[Job])

    # reports ---------------------------------------------------------------------------
    async def apply_reports(self, reports: Sequence[Report]) -> ReportsApplied:
        """Apply a batch of worker reports (each conditional; repeating it is harmless)."""
        body = msgspec.json.encode(ReportBatch(reports=list(reports)))
        return _decode(await self._request("POST", "/reports", body=body), ReportsApplied)

    async def apply_encoded_reports(self, reports: Sequence[bytes]) -> ReportsApplied:
        """:meth:`apply_reports` for reports already encoded (as the report stream holds
        them): the batch is joined, not decoded and encoded again."""
        body = b'{"reports":[' + b",".join(reports) + b"]}"
        return _decode(await self._request("POST", "/reports", body=body), ReportsApplied)

    # accounts ----------------------------------------------------------------------------
    async def check_password(self, username: str, password: str) -> User | None:
        """The user, if the password is theirs and they may sign in; else None."""
        try:
            content = await self._request("POST", "/users/check", body=msgspec.json.encode(
                Credentials(username=username, password=password)))
        except DataServiceRefusedError as exc:
            if exc.status_code == 403:
                return None
            raise
        return _decode(content, User)

    async def get_user(self, username: str) -> User | None:
        try:
            content = await self._request("GET", f"/users/{quote(username, safe='')}",
                                          job_id="-")
        except NotFoundError:
            return None
        return _decode(content, User)

    async def list_users(self) -> list[User]:
        return _decode(await self._request("GET", "/users"), list[User])

    async def create_user(self, user: NewUser) -> User:
        return _decode(await self._request("POST", "/users", body=msgspec.json.encode(user),
                                           idempotent=False), User)

    async def change_user(self, username: str, change: UserChange) -> User:
        content = await self._request("PATCH", f"/users/{quote(username, safe='')}",
                                      body=msgspec.json.encode(change))
        return _decode(content, User)

    async def create_token(self, token: StoredToken) -> StoredToken:
        return _decode(await self._request("POST", "/tokens", body=msgspec.json.encode(token)),
                       StoredToken)

    async def list_tokens(self, username: str) -> list[StoredToken]:
        return _decode(await self._request("GET", "/tokens", params={"username": username}),
                       list[StoredToken])

    async def get_token(self, token_id: str) -> StoredToken | None:
        if not _is_token_id(token_id):  # never a path of our making: no such token
            return None
        try:
            content = await self._request("GET", f"/tokens/{token_id}")
        except NotFoundError:
            return None
        return _decode(content, StoredToken)

    async def revoke_token(self, token_id: str) -> StoredToken | None:
        if not _is_token_id(token_id):
            return None
        try:
            content = await self._request("DELETE", f"/tokens/{token_id}")
        except NotFoundError:
            return None
        return _decode(content, StoredToken)

    async def token_used(self, token_id: str) -> None:
        if not _is_token_id(token_id):
            return
        await self._request("POST", f"/tokens/{token_id}/used")

    # webhook keys ------------------------------------------------------------------------
    async def get_webhook_key(self, username: str) -> WebhookKey | None:
        """The user's webhook key id, or None if they never made a webhook secret."""
        try:
            content = await self._request("GET", f"/webhook-keys/{quote(username, safe='')}")
        except NotFoundError:
            return None
        return _decode(content, WebhookKey)

    async def rotate_webhook_key(self, username: str) -> WebhookKey:
        """A new webhook key id for the user (the old one is gone). Safe to repeat: a
        repeat makes another key, and the answer is the one that stays."""
        content = await self._request("POST", f"/webhook-keys/{quote(username, safe='')}")
        return _decode(content, WebhookKey)

    async def ready(self) -> bool:
        """Whether the data service answers its ``/readyz`` (one try, no retries)."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with self._session.get(self.base_url + "/readyz",
                                         timeout=aiohttp.ClientTimeout(total=2.0)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
