"""HEAD answers as GET does, with no body, from the kernel process every deployment runs.

Monitors, link checkers and caches ask HEAD; a 405 there reads as "the page is broken".
The requests go over a plain socket, so what the server writes after the headers is seen
as it is (an HTTP client would not read a HEAD answer's body even if one came).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from backend.api.headers import SECURITY_HEADERS
from tests.services import ManagedProcess, create_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["redis"])

StartKernel = Callable[..., tuple[str, ManagedProcess]]
BUNDLE = "main-ABCD2345.js"


def raw(url: str, method: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """``method path`` on a connection of its own: (status, headers, every byte after them)."""
    parts = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answer_headers, rest


def _comparable(headers: dict[str, str]) -> dict[str, str]:
    # The CSRF cookie handed out with a GET is a new random token each time.
    return {name: value for name, value in headers.items() if name not in ("date", "set-cookie")}


@pytest.fixture
def web_app(tmp_path: Path) -> Path:
    dist = tmp_path / "browser"
    dist.mkdir()
    (dist / "index.html").write_text(f'<app-root></app-root><script src="{BUNDLE}"></script>')
    (dist / BUNDLE).write_text("console.log('the app')")
    return dist


def test_head_answers_what_get_answers_without_the_body(
        kernel_process: StartKernel, web_app: Path, data_service: str, user: str) -> None:
    url, _ = kernel_process(FRONTEND_DIST=str(web_app))
    create_user(data_service, user)
    token = {"Authorization": f"Bearer {sign_in(url, user)}"}
    for path, auth in [("/healthz", {}), ("/readyz", {}), ("/", {}), ("/index.html", {}),
                       ("/jobs/0123456789abcdef01234567", {}), (f"/{BUNDLE}", {}),
                       ("/schema/openapi.json", {}), ("/api/v1/tasks", token),
                       ("/api/v1/jobs", token), ("/api/v1/auth/me", token),
                       ("/api/v1/auth/session", {})]:
        got_status, got, body = raw(url, "GET", path, **auth)
        assert got_status == 200, (path, body[:200])
        assert body and int(got["content-length"]) == len(body), path
        status, headers, rest = raw(url, "HEAD", path, **auth)
        assert status == 200, path
        assert rest == b"", (path, rest[:200])
        # The same headers: length, type, caching, ETag, the security headers.
        assert _comparable(headers) == _comparable(got), path
        assert ("set-cookie" in headers) == ("set-cookie" in got), path
        for name, value in SECURITY_HEADERS.items():
            assert headers[name.lower()] == value, (path, name)

    # A HEAD may be conditional too: a still-good ETag is a 304.
    _, listed, _ = raw(url, "HEAD", "/api/v1/jobs", **token)
    status, _, rest = raw(url, "HEAD", "/api/v1/jobs", If_None_Match=listed["etag"], **token)
    assert (status, rest) == (304, b"")
    # A HEAD of what has no GET is refused as a GET would be, still without a body.
    status, headers, rest = raw(url, "HEAD", "/api/v1/auth/logout", **token)
    assert (status, rest) == (405, b"")
    assert raw(url, "HEAD", "/api/v1/jobs")[0] == 401


def test_head_of_a_live_stream_answers_at_once(
        kernel_process: StartKernel, data_service: str, user: str) -> None:
    url, proc = kernel_process()
    create_user(data_service, user)
    token = {"Authorization": f"Bearer {sign_in(url, user)}"}
    # No worker runs here: a GET of this stream would stay open as long as the job waits.
    job_id = httpx.post(f"{url}/api/v1/job_executor/async", headers=token, timeout=15,
                        json={"job_name": "echo", "user_id": user,
                              "estimated_time": 1}).json()["job_id"]
    started = time.monotonic()
    status, headers, rest = raw(url, "HEAD", f"/api/v1/jobs/{job_id}/events", **token)
    assert time.monotonic() - started < 5
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert rest == b""
    # The kernel goes on serving, and logged no error for the stream it ended.
    assert raw(url, "GET", "/healthz")[0] == 200
    assert "Traceback" not in proc.log_path.read_text()
