"""Who may call the kernel, and what they may touch: sessions, API tokens, OIDC, the
cross-user matrix, CSRF, and the limits per user."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.api.headers import SECURITY_HEADERS
from backend.local.embedded import free_port
from tests.integration.api.conftest import Kernel, OpenKernel
from tests.services import TEST_PASSWORD, TEST_SECRETS, create_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["redis"])

JOB = "/api/v1/jobs/{}"


def name() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


async def submitted(http: httpx.AsyncClient, **fields: Any) -> str:
    answer = await http.post("/api/v1/job_executor/async",
                             json={"job_name": "echo", "estimated_time": 1, **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


def routes(job_id: str) -> list[tuple[str, str]]:
    return [("GET", JOB.format(job_id)), ("GET", JOB.format(job_id) + "/events"),
            ("POST", JOB.format(job_id) + "/cancel"), ("DELETE", JOB.format(job_id))]


async def test_another_users_job_is_a_404_everywhere_and_stays_untouched(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    alice = kernel.http
    job_id = await submitted(alice)
    bob = await kernel.sign_in(name())
    for method, path in routes(job_id):
        answer = await bob.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        # The same answer as for a job that does not exist: ids cannot be probed.
        unknown = await bob.request(method, path.replace(job_id, "0123456789abcdef01234567"))
        assert unknown.status_code == 404
    listed = await bob.get("/api/v1/jobs", params={"user_id": user})
    assert listed.status_code == 403
    submit_as_alice = await bob.post("/api/v1/job_executor/async", json={
        "job_name": "echo", "estimated_time": 1, "user_id": user})
    assert submit_as_alice.status_code == 403
    mine = (await bob.get("/api/v1/jobs")).json()
    assert mine["items"] == []
    job = (await store.get(f"/job/{job_id}")).json()
    assert (job["status"], job["user_id"]) == ("queued", user)
    assert (await alice.get(JOB.format(job_id))).status_code == 200


async def test_an_admin_sees_and_acts_for_every_user(kernel: Kernel, user: str) -> None:
    job_id = await submitted(kernel.http)
    admin = await kernel.sign_in(name(), role="admin")
    assert (await admin.get(JOB.format(job_id))).status_code == 200
    theirs = (await admin.get("/api/v1/jobs", params={"user_id": user})).json()
    assert [j["id"] for j in theirs["items"]] == [job_id]
    everyone = (await admin.get("/api/v1/jobs", params={"all": "true", "limit": 100})).json()
    assert job_id in [j["id"] for j in everyone["items"]]
    for_them = await submitted(admin, user_id=user)
    assert (await kernel.http.get(JOB.format(for_them))).json()["user_id"] == user
    assert (await admin.post(JOB.format(job_id) + "/cancel")).status_code == 200


def forged(sub: str, **claims: Any) -> str:
    payload = {"sub": sub, "iss": "taskbroker", "typ": "session",
               "exp": datetime.now(UTC) + timedelta(hours=1), **claims}
    return jwt.encode(payload, "not-the-kernels-secret-but-just-as-long-as-one", algorithm="HS256")


def signed(sub: str, **claims: Any) -> str:
    payload = {"sub": sub, "iss": "taskbroker", "typ": "session",
               "exp": datetime.now(UTC) + timedelta(hours=1), **claims}
    return jwt.encode(payload, TEST_SECRETS["AUTH_SECRET"], algorithm="HS256")


def unsigned(sub: str) -> str:
    header = {"alg": "none", "typ": "JWT"}
    payload = {"sub": sub, "iss": "taskbroker", "typ": "session",
               "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp())}
    encode = jwt.utils.base64url_encode
    return (encode(json.dumps(header).encode()).decode() + "."
            + encode(json.dumps(payload).encode()).decode() + ".")


async def test_missing_or_bad_credentials_are_a_401_with_www_authenticate(
        kernel: Kernel, user: str) -> None:
    job_id = await submitted(kernel.http)
    bad = {
        "none": None,
        "garbage": "not-a-token",
        "forged": forged(user),
        "alg none": unsigned(user),
        "expired": signed(user, exp=datetime.now(UTC) - timedelta(minutes=5)),
        "unknown user": signed(f"{user}-nobody"),
        "wrong issuer": signed(user, iss="someone-else"),
        "api token not recorded": signed(user, typ="api", jti=uuid.uuid4().hex),
    }
    for what, token in bad.items():
        client = await kernel.client(token)
        for method, path in [*routes(job_id), ("GET", "/api/v1/jobs"),
                             ("POST", "/api/v1/job_executor/async")]:
            answer = await client.request(method, path, json={} if method == "POST" else None)
            assert answer.status_code == 401, (what, method, path, answer.text)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await kernel.http.get(JOB.format(job_id))).json()["status"] == "queued"


async def test_api_tokens_are_shown_once_listed_used_and_revoked(kernel: Kernel) -> None:
    made = await kernel.http.post("/api/v1/tokens", json={"name": "nightly export"})
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["id"]
    listed = (await kernel.http.get("/api/v1/tokens")).json()
    assert token_id in [t["id"] for t in listed]
    assert token not in json.dumps(listed)  # never shown again
    script = await kernel.client(token)
    assert (await script.get("/api/v1/auth/me")).json()["via"] == "token"
    assert (await script.get("/api/v1/auth/session")).json()["via"] == "token"
    used = next(t for t in (await kernel.http.get("/api/v1/tokens")).json()
                if t["id"] == token_id)
    assert used["last_used_at"] is not None
    other = await kernel.sign_in(name())
    assert (await other.delete(f"/api/v1/tokens/{token_id}")).status_code == 404  # not theirs
    assert (await kernel.http.delete(f"/api/v1/tokens/{token_id}")).status_code == 200
    assert (await script.get("/api/v1/auth/me")).status_code == 401  # at once, on this kernel
    revoked = await script.get("/api/v1/auth/session")
    assert revoked.status_code == 200 and revoked.json() == {"signed_in": False}
    assert token_id not in [t["id"] for t in (await kernel.http.get("/api/v1/tokens")).json()]


async def test_a_disabled_user_is_refused_at_once_or_within_seconds(
        kernel: Kernel, store: httpx.AsyncClient) -> None:
    who = name()
    client = await kernel.sign_in(who)
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    await store.patch(f"/users/{who}", json={"disabled": True})
    kernel.app.state.identities.forget_user(who)  # what a few seconds of cache age would do
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    anonymous = await kernel.client()
    answer = await anonymous.post("/api/v1/auth/token", json={
        "username": who, "password": TEST_PASSWORD, "name": "x"})
    assert answer.status_code == 401


async def test_the_web_app_session_cookie_and_csrf(kernel: Kernel) -> None:
    who = name()
    create_user(kernel.env["DATA_SERVICE_URL"], who)
    browser = await kernel.client()
    # What the web app asks first: signed out is an answer (200), not an error.
    assert (await browser.get("/api/v1/auth/session")).json() == {"signed_in": False}
    wrong = await browser.post("/api/v1/auth/login", json={"username": who, "password": "no"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong user name or password"
    signed_in = await browser.post("/api/v1/auth/login",
                                   json={"username": who, "password": TEST_PASSWORD})
    assert signed_in.status_code == 200 and signed_in.json()["username"] == who
    cookie = signed_in.headers["set-cookie"]
    assert "taskbroker_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie or "samesite=strict" in cookie.lower()
    assert "authorization" not in {k.lower() for k in signed_in.headers}  # cookie only
    me = await browser.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json() == {"username": who, "role": "user",
                                                   "via": "session"}
    session = await browser.get("/api/v1/auth/session")
    assert session.status_code == 200 and session.json() == {
        "signed_in": True, "username": who, "role": "user", "via": "session"}
    # A state-changing request on the cookie alone is refused: another site could send it.
    body = {"job_name": "echo", "estimated_time": 1}
    forged_post = await browser.post("/api/v1/job_executor/async", json=body)
    assert forged_post.status_code == 403
    csrf = browser.cookies.get("csrftoken")
    assert csrf, "a GET hands out the CSRF cookie"
    ok = await browser.post("/api/v1/job_executor/async", json=body,
                            headers={"X-CSRFToken": csrf})
    assert ok.status_code == 200, ok.text
    out = await browser.post("/api/v1/auth/logout", headers={"X-CSRFToken": csrf})
    assert out.status_code == 200
    assert (await browser.get("/api/v1/auth/me")).status_code == 401
    # The same cookie, sent again after the sign-out: no longer a session.
    after = await browser.get("/api/v1/auth/session")
    assert after.status_code == 200 and after.json() == {"signed_in": False}


async def test_every_answer_carries_the_security_headers(kernel: Kernel) -> None:
    # An answer, a probe, an error (404) and a route open to anyone.
    for path in ("/api/v1/tasks", "/healthz", "/api/v1/jobs/0123456789abcdef01234567",
                 "/api/v1/auth/session"):
        headers = (await kernel.http.get(path)).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        for header, value in SECURITY_HEADERS.items():
            assert headers[header] == value, (path, header)
        assert "camera=()" in headers["permissions-policy"]
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cross-origin-resource-policy"] == "same-origin"


class _Issuer(BaseHTTPRequestHandler):
    """An OIDC issuer's discovery document and JWKS, served on 127.0.0.1."""

    documents: dict[str, Any] = {}
    fetches: list[str] = []

    def do_GET(self) -> None:
        self.fetches.append(self.path)
        body = self.documents.get(self.path)
        if isinstance(body, str):  # a redirect to that address
            self.send_response(302)
            self.send_header("location", body)
            self.end_headers()
            return
        self.send_response(200 if body is not None else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_issuer() -> Iterator[tuple[str, Any]]:
    """A test OIDC issuer on 127.0.0.1: (its URL, its RSA signing key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="test-key", use="sig", alg="RS256")
    _Issuer.documents = {"/.well-known/openid-configuration": {
        "issuer": url, "jwks_uri": f"{url}/jwks"}, "/jwks": {"keys": [jwk]}}
    _Issuer.fetches = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _Issuer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield url, key
    finally:
        server.shutdown()


@pytest.fixture
def issuer() -> Iterator[tuple[str, Any]]:
    with serve_issuer() as served:
        yield served


def hs256_with(secret: bytes, payload: dict[str, Any]) -> str:
    """A JWT signed with HMAC-SHA256 under any bytes (PyJWT refuses a PEM as a secret)."""
    encode = jwt.utils.base64url_encode
    head = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = encode(json.dumps(payload).encode())
    signature = hmac.new(secret, head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + encode(signature)).decode()


def oidc_token(url: str, key: Any, kid: str = "test-key", **claims: Any) -> str:
    payload = {"sub": "carol@example.com", "iss": url, "aud": "taskbroker",
               "exp": datetime.now(UTC) + timedelta(minutes=5),
               "iat": datetime.now(UTC), **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_oidc_jwts_of_the_configured_issuer_are_accepted(
        open_kernel: OpenKernel, issuer: Any) -> None:
    url, key = issuer
    kernel = await open_kernel(AUTH_OIDC_ISSUER=url, AUTH_OIDC_AUDIENCE="taskbroker")
    carol = await kernel.client(oidc_token(url, key))
    me = await carol.get("/api/v1/auth/me")
    assert me.status_code == 200, me.text
    # The IdP's users have names of their own, never a local user's.
    assert me.json() == {"username": "oidc:carol@example.com", "role": "user", "via": "oidc"}
    job_id = await submitted(carol)
    assert (await carol.get(JOB.format(job_id))).json()["user_id"] == "oidc:carol@example.com"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo)
    refused = {
        "wrong audience": oidc_token(url, key, aud="another-app"),
        "wrong issuer": oidc_token(url, key, iss="http://127.0.0.1:1"),
        "expired": oidc_token(url, key, exp=datetime.now(UTC) - timedelta(minutes=1)),
        "another key": oidc_token(url, other_key),
        # The issuer's public key used as an HMAC secret: the classic confusion.
        "alg confusion": hs256_with(public_pem, {
            "sub": "carol@example.com", "iss": url, "aud": "taskbroker",
            "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}),
    }
    for what, token in refused.items():
        client = await kernel.client(token)
        assert (await client.get("/api/v1/auth/me")).status_code == 401, what
    # Tokens naming key ids the issuer never had: refused, and they cannot make the kernel
    # hammer the issuer (at most one fetch a minute for keys not known yet).
    fetched = len(_Issuer.fetches)
    for n in range(20):
        client = await kernel.client(oidc_token(url, other_key, kid=f"made-up-{n}"))
        assert (await client.get("/api/v1/auth/me")).status_code == 401
    await asyncio.sleep(0.5)
    assert len(_Issuer.fetches) - fetched <= 2  # discovery + JWKS, once


async def test_a_user_with_too_many_unfinished_jobs_is_told_to_wait(
        open_kernel: OpenKernel) -> None:
    kernel = await open_kernel(MAX_UNFINISHED_JOBS_PER_USER="2")
    await submitted(kernel.http)
    await submitted(kernel.http)
    third = await kernel.http.post("/api/v1/job_executor/async",
                                   json={"job_name": "echo", "estimated_time": 1})
    assert third.status_code == 429, third.text
    assert "MAX_UNFINISHED_JOBS_PER_USER" in third.json()["detail"]
    assert int(third.headers["Retry-After"]) >= 1
    admin = await kernel.sign_in(name(), role="admin")
    for _ in range(3):
        await submitted(admin)  # admins are exempt


async def test_sign_in_attempts_are_limited(open_kernel: OpenKernel) -> None:
    kernel = await open_kernel(LOGIN_RATE_LIMIT="3/minute")
    # Counted per address, in Redis shared by every replica: an address of this test alone.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    browser = await kernel.client(address=address)
    answers = [await browser.post("/api/v1/auth/login",
                                  json={"username": "someone", "password": "guess"})
               for _ in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    elsewhere = await kernel.client(address="10.255.255.1")
    assert (await elsewhere.post("/api/v1/auth/login", json={
        "username": "someone", "password": "guess"})).status_code == 401


def test_the_submit_rate_is_shared_by_every_kernel_replica(
        kernel_process: Any, data_service: str) -> None:
    first, _ = kernel_process(SUBMIT_RATE_LIMIT="4/minute")
    second, _ = kernel_process(SUBMIT_RATE_LIMIT="4/minute")
    who = name()
    create_user(data_service, who)
    token = sign_in(first, who)
    codes = []
    for n in range(6):
        url = (first, second)[n % 2]
        answer = httpx.post(f"{url}/api/v1/job_executor/async", timeout=30,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"job_name": "echo", "estimated_time": 1})
        codes.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
    assert codes[:4] == [200] * 4 and codes[4:] == [429, 429], codes


def test_behind_a_trusted_proxy_sign_ins_count_per_client(kernel_process: Any) -> None:
    # The kernel trusts X-Forwarded-For from TRUSTED_PROXIES only (nginx, an ingress).
    behind, _ = kernel_process(LOGIN_RATE_LIMIT="2/minute", TRUSTED_PROXIES="127.0.0.1")
    wrong = {"username": "someone", "password": "guess"}

    def attempts(url: str, client: str, n: int = 3) -> list[int]:
        return [httpx.post(f"{url}/api/v1/auth/login", json=wrong, timeout=30,
                           headers={"X-Forwarded-For": client}).status_code for _ in range(n)]

    first, second = (f"198.51.100.{uuid.uuid4().int % 250}" for _ in range(2))
    assert attempts(behind, first) == [401, 401, 429]
    assert attempts(behind, second) == [401, 401, 429]  # another client: its own count
    # A kernel that trusts no proxy counts the peer: a forged header gains nothing.
    exposed, _ = kernel_process(LOGIN_RATE_LIMIT="2/minute", TRUSTED_PROXIES="192.0.2.1")
    forged = [httpx.post(f"{exposed}/api/v1/auth/login", json=wrong, timeout=30,
                         headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
              for n in range(3)]
    assert forged[-1] == 429, forged
