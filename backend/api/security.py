"""Who calls the kernel: Litestar's JWT security backend, with three ways in.

* the web app signs in and holds an HttpOnly ``SameSite=Strict`` session cookie (a JWT,
  HS256 under AUTH_SECRET) plus Litestar's CSRF cookie for state-changing requests;
* scripts and the CLI send ``Authorization: Bearer <api token>``: also a JWT under
  AUTH_SECRET, naming a token record the data service keeps (SHA-256 of the secret,
  name, creation, last use, revocation);
* with AUTH_OIDC_ISSUER, a bearer JWT of the company's identity provider (RS256/ES256,
  keys from the issuer's JWKS, fetched and cached: :mod:`backend.api.oidc`), the user
  being ``oidc:<AUTH_OIDC_USER_CLAIM>``, a name no local user can have.

Every one is checked by :class:`KernelToken` (signature, algorithm, expiry, issuer,
audience; ``alg: none`` never passes) and then by :func:`retrieve_principal` on every
request (the user exists, or is an IdP's, and is not disabled; a session is of the user's
current session version; the API token is not revoked and is the very one recorded).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
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

from backend.accounts import OIDC_PREFIX, Role, User, is_external, token_hash
from backend.api.oidc import ALGORITHMS as OIDC_ALGORITHMS
from backend.api.oidc import OidcIssuer
from backend.errors import DataServiceError
from backend.jobs import USER_ID_PATTERN
from backend.settings import AuthSettings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

ISSUER = "taskbroker"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32  # characters of AUTH_SECRET (HS256 wants a key of 256 bits)
SESSION_COOKIE = "taskbroker_session"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
CACHE_SECONDS = 5.0  # a user or token record is looked up again after this long
STALE_SECONDS = 600.0  # ...but while the data service is away, it is trusted this long
LAST_USED_EVERY = 60.0  # seconds between two notes of a token's last use
MAX_USERNAME = 128  # a job's user_id: an IdP user's name must fit it
VERIFIED_CACHE_SIZE = 10_000  # tokens whose signature was checked, kept until they expire

# Paths anyone may call: the schema and sign-in. The probes and the web app's files are
# marked on their routes (exclude_from_auth), as is /api/v1/auth/session, where the app asks
# who is signed in.
PUBLIC_PATHS = [r"^/schema", r"^/api/v1/auth/(login|token)$"]


class Principal(Struct, kw_only=True, frozen=True):
    """The caller of a request: ``request.user``."""

    username: str
    role: Role = Role.USER
    via: str = "session"  # session, token or oidc

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN


class KernelToken(Token):
    """Litestar's JWT token, decoding our own tokens and, when configured, OIDC ones."""

    oidc: OidcIssuer | None = None
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
            try:
                return jwt.decode(encoded_token, key=secret, algorithms=[ALGORITHM],
                                  issuer=ISSUER, options={"require": ["exp", "sub", "iss"]})
            except (jwt.PyJWTError, TypeError, ValueError) as exc:
                raise NotAuthorizedException(f"the token is not valid: {exc}") from exc
        if cls.oidc is None or header.get("alg") not in OIDC_ALGORITHMS:
            raise NotAuthorizedException("the token's algorithm is not accepted")
        payload = cls.oidc.decode(encoded_token, header)
        return {"sub": cls._oidc_user(payload), "exp": payload["exp"],
                "iat": payload.get("iat", 0), "iss": payload["iss"], "typ": "oidc"}

    @classmethod
    def _oidc_user(cls, payload: dict[str, Any]) -> str:
        """``oidc:<claim>``: the IdP's users never share a name with a local user."""
        claim = payload.get(cls.user_claim)
        if not isinstance(claim, str) or not claim:
            raise NotAuthorizedException(f"the OIDC token has no {cls.user_claim!r} claim")
        # An e-mail address names a person only once the IdP checked it is theirs.
        if cls.user_claim == "email" and payload.get("email_verified") not in (True, "true"):
            raise NotAuthorizedException("the OIDC token's email is not verified")
        username = OIDC_PREFIX + claim
        if len(username) > MAX_USERNAME or not re.fullmatch(USER_ID_PATTERN, username):
            raise NotAuthorizedException(f"the OIDC token's {cls.user_claim!r} claim cannot "
                                         "name a user (blanks, '/', '?', '#' or too long)")
        return username


def _token_class(settings: AuthSettings) -> type[KernelToken]:
    """A token class bound to these settings (the class is what Litestar is given)."""
    oidc = (OidcIssuer(settings.auth_oidc_issuer, settings.auth_oidc_audience)
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


async def _account(identities: Identities, username: str) -> User | None:
    """Who ``username`` is now, if they may come in: a local user must exist and not be
    disabled; an IdP's user (``oidc:...``) has a record only if an operator disabled it,
    and is always a plain user."""
    user = await identities.user(username)
    if not is_external(username):
        return None if user is None or user.disabled else user
    if user is not None and user.disabled:
        return None
    return User(username=username, role=Role.USER,
                session_version=user.session_version if user else 0)


async def retrieve_principal(token: Token, connection: ASGIConnection[Any, Any, Any, Any],
                             ) -> Principal | None:
    """The caller, once the token's signature is good; None refuses the request (401)."""
    identities: Identities = connection.app.state.identities
    kind = str(token.extras.get("typ"))
    # An IdP's user comes only through OIDC or an API token of its own; a local one never
    # through OIDC.
    external = is_external(token.sub)
    if not {"oidc": external, "session": not external, "api": True}.get(kind, False):
        return None
    user = await _account(identities, token.sub)
    if user is None:
        return None
    if kind == "oidc":
        return Principal(username=user.username, via="oidc")
    if kind == "session":
        # Signing out (everywhere), a new password or disabling bumps the version.
        if token.extras.get("ver", 0) != user.session_version:
            return None
        return Principal(username=user.username, role=user.role, via="session")
    if isinstance(token.jti, str):
        record = await identities.token(token.jti)
        presented = connection.headers.get("authorization", "").partition(" ")[2]
        if (record is None or record.revoked_at is not None or record.username != user.username
                or not secrets.compare_digest(record.token_hash, token_hash(presented))):
            return None
        await identities.note_use(token.jti)
        return Principal(username=user.username, role=user.role, via="token")
    return None


async def still_signed_in(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the caller of a long request (a live stream) may still be served: its token
    not expired, its user not disabled nor signed out, its API token not revoked (as seen
    through the few seconds' cache of :class:`Identities`)."""
    token = connection.auth
    if not isinstance(token, Token) or token.exp <= datetime.now(UTC):
        return False
    try:
        return await retrieve_principal(token, connection) is not None
    except DataServiceError:
        return True  # an outage, not a revocation: the stream's own reads report it


async def signed_in_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller, if its session cookie or bearer token lets it in (the very checks of every
    other route); None otherwise. For a route open to anyone that answers both."""
    state = connection.app.state
    checker = state.get("auth_checker")
    if checker is None:  # the app's own authentication middleware, never called as one
        checker = state.auth_checker = state.auth.middleware(_no_app)
    try:
        result = await checker.authenticate_request(connection)
    except NotAuthorizedException:
        return None
    return result.user  # type: ignore[no-any-return]


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the authentication checker is not an app")


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


def session_cookie(auth: JWTCookieAuth[Any, Any], user: User) -> Cookie:
    """The HttpOnly cookie that signs ``user`` in (the token never shows elsewhere)."""
    token = auth.create_token(identifier=user.username, token_issuer=ISSUER,
                              token_extras={"typ": "session", "role": str(user.role),
                                            "ver": user.session_version})
    return Cookie(key=SESSION_COOKIE, value=token, path="/", httponly=True, secure=auth.secure,
                  samesite="strict", max_age=int(auth.default_token_expiration.total_seconds()))


def api_token(auth: JWTCookieAuth[Any, Any], username: str,
              lifetime: timedelta) -> tuple[str, str, datetime]:
    """A new API token for ``username``: (its id, its secret, when it expires)."""
    token_id = secrets.token_hex(16)
    token = KernelToken(sub=username, exp=datetime.now(UTC) + lifetime, iss=ISSUER,
                        jti=token_id, extras={"typ": "api"})
    return token_id, token.encode(secret=auth.token_secret, algorithm=ALGORITHM), token.exp


def csrf_secret(auth_secret: str) -> str:
    """The CSRF tokens' HMAC key: derived from AUTH_SECRET, so no value made under one key
    (a CSRF token, a JWT) can ever serve under the other."""
    return hmac.new(auth_secret.encode(), b"taskbroker csrf", hashlib.sha256).hexdigest()


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
