"""Who calls the kernel: Litestar's JWT security backend, with three ways in.

* the web app signs in and holds an HttpOnly ``SameSite=Strict`` session cookie (a JWT,
  HS256 under AUTH_SECRET) plus Litestar's CSRF cookie for state-changing requests;
* scripts and the CLI send ``Authorization: Bearer <api token>``: also a JWT under
  AUTH_SECRET, naming a token record the data service keeps (SHA-256 of the secret,
  name, creation, last use, revocation);
* with AUTH_OIDC_ISSUER, a bearer JWT of the company's identity provider (RS256/ES256,
  keys from the issuer's JWKS, fetched and cached), the user being AUTH_OIDC_USER_CLAIM.

Every one is checked by :class:`KernelToken` (signature, algorithm, expiry, issuer,
audience; ``alg: none`` never passes) and then by :func:`retrieve_principal` (the user
exists and is not disabled, the API token is not revoked and is the very one recorded).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.security.jwt import JWTCookieAuth, Token
from litestar.types import Receive, Scope, Send
from msgspec import Struct

from backend.accounts import Role, token_hash
from backend.client import DataServiceClient
from backend.errors import DataServiceError
from backend.settings import AuthSettings

log = logging.getLogger(__name__)

ISSUER = "taskbroker"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32  # characters of AUTH_SECRET (HS256 wants a key of 256 bits)
SESSION_COOKIE = "taskbroker_session"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
API_TOKEN_LIFETIME = timedelta(days=3650)  # revoked, not expired
CACHE_SECONDS = 5.0  # a user or token record is looked up again after this long
STALE_SECONDS = 600.0  # ...but while the data service is away, it is trusted this long
LAST_USED_EVERY = 60.0  # seconds between two notes of a token's last use
JWKS_CACHE_SECONDS = 3600
VERIFIED_CACHE_SIZE = 10_000  # tokens whose signature was checked, kept until they expire
JWKS_RETRY_SECONDS = 60.0  # at most one fetch this often for keys not known yet
OIDC_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]

# Paths anyone may call: the schema and sign-in. The probes and the web app's files are
# marked on their routes (exclude_from_auth); the app asks /api/v1/auth/me who is signed in.
PUBLIC_PATHS = [r"^/schema", r"^/api/v1/auth/(login|token)$"]


class Principal(Struct, kw_only=True, frozen=True):
    """The caller of a request: ``request.user``."""

    username: str
    role: Role = Role.USER
    via: str = "session"  # session, token or oidc

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN


class _Oidc:
    """An OIDC issuer's signing keys, from its discovery document, kept in memory.

    Checking a token never waits on the network: the keys are fetched at start
    (:meth:`refresh`, in a thread), again every JWKS_CACHE_SECONDS, and when a token names
    a key id not known yet (a rotation), at most once per JWKS_RETRY_SECONDS, always in a
    background thread. Meanwhile such a token is a 401, so a flood of made-up key ids
    costs one fetch a minute, not one per request.
    """

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched = float("-inf")
        self._tried = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Fetch the issuer's keys now (blocking: call it from a thread)."""
        with self._lock:
            self._tried = time.monotonic()
        try:
            url = f"{self.issuer}/.well-known/openid-configuration"
            with urllib.request.urlopen(url, timeout=5) as answer:
                discovery = json.load(answer)
            with urllib.request.urlopen(discovery["jwks_uri"], timeout=5) as answer:
                found = jwt.PyJWKSet.from_dict(json.load(answer))
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
            log.warning("could not fetch the OIDC keys of %s: %r", self.issuer, exc)
            return
        keys = {key.key_id: key for key in found.keys}
        with self._lock:
            self._keys, self._fetched = keys, time.monotonic()
        log.info("OIDC: %d signing keys of %s", len(keys), self.issuer)

    def _refresh_soon(self) -> None:
        with self._lock:
            if time.monotonic() - self._tried < JWKS_RETRY_SECONDS:
                return
            self._tried = time.monotonic()
        threading.Thread(target=self.refresh, name="oidc-jwks", daemon=True).start()

    def decode(self, encoded: str, kid: str | None) -> dict[str, Any]:
        if time.monotonic() - self._fetched > JWKS_CACHE_SECONDS:
            self._refresh_soon()  # the keys in hand still serve meanwhile
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            self._refresh_soon()
            raise NotAuthorizedException("the token's signing key is not one of the "
                                         "issuer's known keys (try again shortly)")
        return jwt.decode(encoded, key=key.key, algorithms=OIDC_ALGORITHMS,
                          issuer=self.issuer, audience=self.audience,
                          options={"require": ["exp", "iss", "aud"]})


class KernelToken(Token):
    """Litestar's JWT token, decoding our own tokens and, when configured, OIDC ones."""

    oidc: _Oidc | None = None
    user_claim = "sub"
    # Tokens (exactly as sent) whose signature and claims passed, with their payloads: a
    # client sends the same token on every request, and checking it again costs more than
    # the rest of a small request. Only the expiry is checked again; who it names (the
    # user enabled, the API token not revoked) is still checked on every request.
    verified: dict[str, dict[str, Any]] = {}

    @classmethod
    def decode_payload(cls, encoded_token: str, secret: str, algorithms: list[str],
                       issuer: str | Sequence[str] | None = None,
                       audience: str | Sequence[str] | None = None,
                       options: Any = None) -> Any:
        verified = cls.verified.get(encoded_token)
        if verified is not None and verified["exp"] > time.time():
            return dict(verified)  # checked before, not expired: the signature holds
        payload = cls._verify(encoded_token, secret)
        if len(cls.verified) >= VERIFIED_CACHE_SIZE:
            cls.verified.clear()
        cls.verified[encoded_token] = payload
        return dict(payload)

    @classmethod
    def _verify(cls, encoded_token: str, secret: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(encoded_token)
        except jwt.PyJWTError as exc:
            raise NotAuthorizedException("the token is not a JWT") from exc
        if header.get("alg") == ALGORITHM:
            # Only ever HS256 under our secret: a token claiming "none" or another
            # algorithm is not ours to check with this key.
            return jwt.decode(encoded_token, key=secret, algorithms=[ALGORITHM], issuer=ISSUER,
                              options={"require": ["exp", "sub", "iss"]})
        if cls.oidc is None or header.get("alg") not in OIDC_ALGORITHMS:
            raise NotAuthorizedException("the token's algorithm is not accepted")
        payload = cls.oidc.decode(encoded_token, header.get("kid"))
        user = payload.get(cls.user_claim)
        if not isinstance(user, str) or not user:
            raise NotAuthorizedException(f"the OIDC token has no {cls.user_claim!r} claim")
        return {"sub": user, "exp": payload["exp"], "iat": payload.get("iat", 0),
                "iss": payload["iss"], "typ": "oidc"}


def _token_class(settings: AuthSettings) -> type[KernelToken]:
    """A token class bound to these settings (the class is what Litestar is given)."""
    oidc = (_Oidc(settings.auth_oidc_issuer, settings.auth_oidc_audience)
            if settings.auth_oidc_issuer else None)
    return type("BoundKernelToken", (KernelToken,),
                {"oidc": oidc, "user_claim": settings.auth_oidc_user_claim, "verified": {}})


class Identities:
    """Looks users and API tokens up in the data service, briefly cached.

    While the data service does not answer, what was looked up in the last STALE_SECONDS
    still counts: a signed-in user keeps getting the kernel's own answers (a 503 that
    names the job, say) instead of being signed out by an outage.
    """

    def __init__(self, client: DataServiceClient) -> None:
        self.client = client
        self._users: dict[str, tuple[float, Any]] = {}
        self._tokens: dict[str, tuple[float, Any]] = {}
        self._noted: dict[str, float] = {}

    async def _cached(self, cache: dict[str, tuple[float, Any]], key: str, look: Any) -> Any:
        cached = cache.get(key)
        age = time.monotonic() - cached[0] if cached else float("inf")
        if age < CACHE_SECONDS:
            return cached[1]  # type: ignore[index]
        try:
            value = await look(key)
        except DataServiceError:
            if cached is not None and age < STALE_SECONDS:
                return cached[1]
            raise
        cache[key] = (time.monotonic(), value)
        return value

    async def user(self, username: str) -> Any:
        return await self._cached(self._users, username, self.client.get_user)

    async def token(self, token_id: str) -> Any:
        return await self._cached(self._tokens, token_id, self.client.get_token)

    def forget_token(self, token_id: str) -> None:
        """A token revoked here is refused here at once (other replicas: within seconds)."""
        self._tokens.pop(token_id, None)

    def forget_user(self, username: str) -> None:
        self._users.pop(username, None)

    async def note_use(self, token_id: str) -> None:
        if time.monotonic() - self._noted.get(token_id, float("-inf")) < LAST_USED_EVERY:
            return
        self._noted[token_id] = time.monotonic()
        try:
            await self.client.token_used(token_id)
        except Exception as exc:  # a last-use note is not worth failing a request for
            log.debug("could not note the use of token %s: %s", token_id, exc)


async def retrieve_principal(token: Token, connection: ASGIConnection[Any, Any, Any, Any],
                             ) -> Principal | None:
    """The caller, once the token's signature is good; None refuses the request (401)."""
    identities: Identities = connection.app.state.identities
    kind = token.extras.get("typ")
    if kind == "oidc":
        return Principal(username=token.sub, via="oidc")
    user = await identities.user(token.sub)
    if user is None or user.disabled:
        return None
    if kind == "session":
        return Principal(username=user.username, role=user.role, via="session")
    if kind == "api" and isinstance(token.jti, str):
        record = await identities.token(token.jti)
        presented = connection.headers.get("authorization", "").partition(" ")[2]
        if (record is None or record.revoked_at is not None or record.username != user.username
                or not secrets.compare_digest(record.token_hash, token_hash(presented))):
            return None
        await identities.note_use(token.jti)
        return Principal(username=user.username, role=user.role, via="token")
    return None


def make_auth(settings: AuthSettings) -> JWTCookieAuth[Principal, KernelToken]:
    """The security backend of the kernel's app."""
    if not settings.auth_secret:
        raise SystemExit("the kernel needs AUTH_SECRET (it signs sessions and API tokens); "
                         "the local run generates one under DATA_DIR")
    if len(settings.auth_secret) < MIN_SECRET_LENGTH:
        raise SystemExit(f"AUTH_SECRET is too short to sign tokens safely: use at least "
                         f"{MIN_SECRET_LENGTH} random characters (e.g. `python3 -c 'import "
                         "secrets; print(secrets.token_urlsafe(32))'`)")
    if settings.auth_oidc_issuer and not settings.auth_oidc_audience:
        raise SystemExit("AUTH_OIDC_ISSUER is set: AUTH_OIDC_AUDIENCE must be set too")
    return JWTCookieAuth[Principal, KernelToken](
        retrieve_user_handler=retrieve_principal,
        token_secret=settings.auth_secret,
        algorithm=ALGORITHM,
        token_cls=_token_class(settings),
        key=SESSION_COOKIE,
        samesite="strict",
        secure=settings.auth_cookie_secure,
        default_token_expiration=timedelta(seconds=settings.auth_session_ttl),
        exclude=PUBLIC_PATHS,
        description="A session cookie from POST /api/v1/auth/login, or a bearer API token.",
    )


def session_cookie(auth: JWTCookieAuth[Any, Any], username: str, role: Role) -> Cookie:
    """The HttpOnly cookie that signs ``username`` in (the token never shows elsewhere)."""
    token = auth.create_token(identifier=username, token_issuer=ISSUER,
                              token_extras={"typ": "session", "role": str(role)})
    return Cookie(key=SESSION_COOKIE, value=token, path="/", httponly=True, secure=auth.secure,
                  samesite="strict", max_age=int(auth.default_token_expiration.total_seconds()))


def api_token(auth: JWTCookieAuth[Any, Any], username: str) -> tuple[str, str]:
    """A new API token for ``username``: (its id, its secret)."""
    token_id = secrets.token_hex(16)
    token = KernelToken(sub=username, exp=datetime.now(UTC) + API_TOKEN_LIFETIME, iss=ISSUER,
                        jti=token_id, extras={"typ": "api"})
    return token_id, token.encode(secret=auth.token_secret, algorithm=ALGORITHM)


class BearerAwareCSRFMiddleware(CSRFMiddleware):
    """Litestar's CSRF protection, for requests a browser authenticates by itself.

    A request carrying no session cookie (a script's bearer token) cannot be forged by
    another site, so it needs no CSRF token; one with the cookie does.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in self.config.safe_methods:
            cookie_header = next((value for key, value in scope.get("headers", [])
                                  if key == b"cookie"), b"")
            if SESSION_COOKIE.encode() + b"=" not in cookie_header:
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
