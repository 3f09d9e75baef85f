"""How long a credential lives, against the real kernel and data service: signing out,
a new password and disabling end what was handed out before; API tokens expire and are
capped per user; a live stream ends once its caller is no longer let in."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from litestar.middleware.csrf import generate_csrf_token

from tests.integration.api.conftest import Kernel, OpenKernel
from tests.integration.api.test_auth import name, submitted
from tests.integration.api.test_events import sse_events
from tests.problems import problem_of
from tests.services import SERVICE_HEADERS, TEST_PASSWORD, TEST_SECRETS, create_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["redis"])

ME = "/api/v1/auth/me"


async def browser_of(kernel: Kernel, who: str, password: str = TEST_PASSWORD,
                     ) -> tuple[httpx.AsyncClient, str]:
    """A browser signed in as ``who``: (the client, its session cookie's value)."""
    browser = await kernel.client()
    answer = await browser.post("/api/v1/auth/login",
                                json={"username": who, "password": password})
    assert answer.status_code == 200, answer.text
    return browser, browser.cookies["taskbroker_session"]


async def with_cookie(kernel: Kernel, session: str) -> httpx.AsyncClient:
    """Another client that presents a copy of a session cookie (what a thief would hold)."""
    return await kernel.client(Cookie=f"taskbroker_session={session}")


async def token_of(kernel: Kernel, who: str, password: str = TEST_PASSWORD,
                   ) -> tuple[httpx.AsyncClient, str]:
    """A script with a new API token of ``who``: (the client, the token's id)."""
    anonymous = await kernel.client()
    made = await anonymous.post("/api/v1/auth/token", json={
        "username": who, "password": password, "name": "script"})
    assert made.status_code == 201, made.text
    return await kernel.client(made.json()["token"]), made.json()["id"]


def forget(kernel: Kernel, who: str, *token_ids: str) -> None:
    """What a few seconds of cache age would do on this kernel."""
    kernel.app.state.identities.forget_user(who)
    for token_id in token_ids:
        kernel.app.state.identities.forget_token(token_id)


def taskbroker(kernel: Kernel, *args: str, stdin: str | None = None) -> None:
    """The operator's CLI, as a process, on the kernel's data service."""
    env = {**os.environ, "DATA_SERVICE_URL": kernel.env["DATA_SERVICE_URL"],
           "DATA_SERVICE_TOKEN": TEST_SECRETS["DATA_SERVICE_TOKEN"]}
    run = subprocess.run([sys.executable, "-c", "from backend.cli import main; main()", *args],
                         env=env, capture_output=True, text=True, timeout=60, input=stdin)
    assert run.returncode == 0, run.stdout + run.stderr


async def test_a_session_cookie_kept_across_logout_is_refused(kernel: Kernel) -> None:
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    _, other_session = await browser_of(kernel, who)
    browser, session = await browser_of(kernel, who)
    script, _ = await token_of(kernel, who)
    stolen = await with_cookie(kernel, session)
    assert (await stolen.get(ME)).status_code == 200
    await browser.get(ME)  # hands out the CSRF cookie
    out = await browser.post("/api/v1/auth/logout",
                             headers={"X-CSRFToken": browser.cookies["csrftoken"]})
    assert out.status_code == 200, out.text
    assert (await stolen.get(ME)).status_code == 401
    # Signing out is everywhere: the other browser's session ended too...
    assert (await (await with_cookie(kernel, other_session)).get(ME)).status_code == 401
    # ...but not the user's API tokens, and a new sign-in works.
    assert (await script.get(ME)).status_code == 200
    _, fresh = await browser_of(kernel, who)
    assert (await (await with_cookie(kernel, fresh)).get(ME)).status_code == 200


async def test_an_operator_signs_a_user_out_everywhere(kernel: Kernel) -> None:
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    _, session = await browser_of(kernel, who)
    script, _ = await token_of(kernel, who)
    taskbroker(kernel, "users", "sign-out", who)
    forget(kernel, who)
    assert (await (await with_cookie(kernel, session)).get(ME)).status_code == 401
    assert (await script.get(ME)).status_code == 200  # API tokens are revoked one by one


async def test_a_new_password_ends_sessions_and_revokes_api_tokens(kernel: Kernel) -> None:
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    _, session = await browser_of(kernel, who)
    script, token_id = await token_of(kernel, who)
    assert (await script.get(ME)).status_code == 200
    taskbroker(kernel, "users", "set-password", who, "--password-stdin",
               stdin="a brand new one 42\n")
    forget(kernel, who, token_id)
    assert (await script.get(ME)).status_code == 401
    assert (await (await with_cookie(kernel, session)).get(ME)).status_code == 401
    _, fresh = await browser_of(kernel, who, "a brand new one 42")
    assert (await (await with_cookie(kernel, fresh)).get(ME)).status_code == 200


async def test_enabling_a_disabled_user_brings_no_old_credential_back(
        kernel: Kernel) -> None:
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    _, session = await browser_of(kernel, who)
    script, token_id = await token_of(kernel, who)
    taskbroker(kernel, "users", "disable", who)
    forget(kernel, who, token_id)
    assert (await script.get(ME)).status_code == 401
    assert (await (await with_cookie(kernel, session)).get(ME)).status_code == 401
    taskbroker(kernel, "users", "enable", who)
    forget(kernel, who, token_id)
    assert (await script.get(ME)).status_code == 401
    assert (await (await with_cookie(kernel, session)).get(ME)).status_code == 401
    fresh, _ = await token_of(kernel, who)
    assert (await fresh.get(ME)).status_code == 200


async def test_api_tokens_are_capped_per_user(open_kernel: OpenKernel) -> None:
    kernel = await open_kernel(AUTH_MAX_API_TOKENS_PER_USER="3")  # the kernel's user has 1
    ids = []
    for n in range(2):
        made = await kernel.http.post("/api/v1/tokens", json={"name": f"t{n}"})
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    refused = await kernel.http.post("/api/v1/tokens", json={"name": "one too many"})
    assert refused.status_code == 409, refused.text
    assert problem_of(refused)["status"] == 409
    assert "AUTH_MAX_API_TOKENS_PER_USER" in refused.json()["detail"]
    assert len((await kernel.http.get("/api/v1/tokens")).json()) == 3
    assert (await kernel.http.delete(f"/api/v1/tokens/{ids[0]}")).status_code == 200
    assert (await kernel.http.post("/api/v1/tokens", json={"name": "again"})).status_code == 201


async def test_an_api_token_expires(open_kernel: OpenKernel) -> None:
    ttl = 4
    kernel = await open_kernel(signed_in=False, AUTH_API_TOKEN_TTL=str(ttl))
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    anonymous = await kernel.client()
    made_at = time.time()
    made = (await anonymous.post("/api/v1/auth/token", json={
        "username": who, "password": TEST_PASSWORD, "name": "short"})).json()
    script = await kernel.client(made["token"])
    assert (await script.get(ME)).status_code == 200
    await asyncio.sleep(max(0.0, made_at + ttl - time.time()) + 1.5)
    answer = await script.get(ME)
    assert problem_of(answer, 401)["title"] == "Unauthorized"
    # It said when it would expire, and a list no longer shows it.
    assert datetime.fromisoformat(made["expires_at"]).timestamp() <= made_at + ttl + 1
    browser, _ = await browser_of(kernel, who)
    assert made["id"] not in [t["id"] for t in (await browser.get("/api/v1/tokens")).json()]


async def test_a_token_id_that_is_not_32_hex_digits_never_reaches_the_store(
        kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    client = kernel.app.state.client
    asked: list[str] = []
    request = client._request

    async def spied(method: str, path: str, **kwargs: Any) -> Any:
        asked.append(path)
        return await request(method, path, **kwargs)

    monkeypatch.setattr(client, "_request", spied)
    # 32 characters each: unquoted in the data service's path, '?' and '#' would cut it.
    for bad in ("0123456789abcdef0123456789abc%3Fxy", "0123456789abcdef0123456789abc%23xy",
                "0123456789ABCDEF0123456789ABCDEF"):
        answer = await kernel.http.delete(f"/api/v1/tokens/{bad}")
        assert answer.status_code == 400, (bad, answer.status_code, answer.text)
        assert problem_of(answer)["status"] == 400
        assert "token_id" in answer.text  # the kernel's own answer, naming the parameter
    assert not [path for path in asked if path.startswith("/tokens/")], asked


async def test_a_csrf_token_made_with_the_auth_secret_itself_is_refused(
        kernel: Kernel) -> None:
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    browser, _ = await browser_of(kernel, who)
    # Made under AUTH_SECRET as such: the CSRF key is derived from it, never it.
    made = generate_csrf_token(TEST_SECRETS["AUTH_SECRET"])
    browser.cookies.set("csrftoken", made)
    answer = await browser.post("/api/v1/job_executor/async", headers={"X-CSRFToken": made},
                                json={"job_name": "echo", "estimated_time": 1})
    assert answer.status_code == 403, answer.text


async def test_a_live_stream_ends_once_its_user_is_disabled(
        kernel_process: Any, data_service: str, user: str) -> None:
    url, _ = kernel_process()
    create_user(data_service, user)
    headers = {"Authorization": f"Bearer {sign_in(url, user)}"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http, \
            httpx.AsyncClient(base_url=data_service, timeout=10,
                              headers=SERVICE_HEADERS) as store:
        job_id = await submitted(http)

        async def keep_changing() -> None:
            # The job keeps running (never finishing), so only the sign-in can end the stream.
            for progress in range(1, 99):
                change: dict[str, Any] = {"progress": progress}
                if progress == 1:
                    change["status"] = "running"
                assert (await store.put(f"/job/{job_id}", json=change)).status_code == 200
                await asyncio.sleep(0.5)

        seen: list[tuple[str | None, str]] = []
        changer = asyncio.create_task(keep_changing())
        try:
            async with asyncio.timeout(45), \
                    http.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
                assert response.status_code == 200
                async for event, data in sse_events(response):
                    seen.append((event, data))
                    if len(seen) == 2:  # it streams; now the operator disables the user
                        disabled = await store.patch(f"/users/{user}", json={"disabled": True})
                        assert disabled.status_code == 200
        finally:
            changer.cancel()
        assert [event for event, _ in seen[:2]] == ["job", "job"]
        assert seen[-1][0] == "error", seen[-1]
        assert "no longer valid" in json.loads(seen[-1][1])["detail"]
