"""Signing in and API tokens: ``/api/v1/auth/...`` and ``/api/v1/tokens``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import Cookie, State
from litestar.exceptions import (
    ClientException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_409_CONFLICT
from msgspec import Struct

from backend.accounts import (
    TOKEN_ID_PATTERN,
    ApiToken,
    Credentials,
    IssuedToken,
    Role,
    StoredToken,
    TokenForUser,
    TokenRequest,
    UserChange,
    is_external,
    token_hash,
)
from backend.api.bodies import responses
from backend.api.dependencies import AppSettings, Client
from backend.api.security import (
    SESSION_COOKIE,
    Principal,
    api_token,
    session_cookie,
    signed_in_caller,
)
from backend.jobs import Deleted
from backend.settings import Settings

WRONG = "wrong user name or password"


class Me(Struct, kw_only=True):
    """Who is signed in."""

    username: str
    role: Role
    via: str = "session"


class Session(Struct, kw_only=True, omit_defaults=True):
    """Whether the caller is signed in: ``{"signed_in": false}``, or who it is."""

    signed_in: bool
    username: str | None = None
    role: Role | None = None
    via: str | None = None


def _live(records: list[StoredToken]) -> list[StoredToken]:
    """The tokens that still work (the data service lists the unrevoked ones)."""
    now = datetime.now(UTC)
    return [r for r in records if r.expires_at is None or r.expires_at > now]


async def _issue(request: Request[Any, Any, Any], client: Any, settings: Settings,
                 username: str, name: str) -> IssuedToken:
    # A cap, so that a stolen session cannot mint tokens without end (checked, then made:
    # concurrent requests may pass it by one or two).
    cap = settings.auth.auth_max_api_tokens_per_user
    held = len(_live(await client.list_tokens(username)))
    if held >= cap:
        raise ClientException(status_code=HTTP_409_CONFLICT, detail=(
            f"{username} holds {held} API tokens, the most one user may have "
            "(AUTH_MAX_API_TOKENS_PER_USER): revoke one first"))
    lifetime = timedelta(seconds=settings.auth.auth_api_token_ttl)
    token_id, secret, expires = api_token(request.app.state.auth, username, lifetime)
    record = await client.create_token(StoredToken(id=token_id, username=username, name=name,
                                                   token_hash=token_hash(secret),
                                                   expires_at=expires))
    return IssuedToken(id=record.id, name=record.name, created_at=record.created_at
                       or datetime.now(UTC), expires_at=expires, token=secret)


def auth_routes(login_middleware: list[Any]) -> list[HTTPRouteHandler]:
    """Sign-in routes (rate-limited by ``login_middleware``) and API token routes."""

    @post("/auth/login", status_code=HTTP_200_OK, summary="Sign in (the web app)",
          tags=["auth"], exclude_from_auth=True, exclude_from_csrf=True,
          middleware=login_middleware, responses=responses(401, 429))
    async def login(request: Request[Any, Any, Any], data: JSONBody[Credentials],
                    client: Client) -> Response[Me]:
        """Check the password; on success set the session cookie (HttpOnly,
        ``SameSite=Strict``). 401 says only that the name or the password is wrong."""
        user = await client.check_password(data.username, data.password)
        if user is None:
            raise NotAuthorizedException(WRONG)
        cookie = session_cookie(request.app.state.auth, user)
        return Response(Me(username=user.username, role=user.role), cookies=[cookie])

    @post("/auth/token", status_code=HTTP_201_CREATED, summary="Sign in for an API token",
          tags=["auth"], exclude_from_auth=True, exclude_from_csrf=True,
          middleware=login_middleware, responses=responses(401, 409, 429))
    async def token_for_credentials(request: Request[Any, Any, Any],
                                    data: JSONBody[TokenForUser], client: Client,
                                    settings: AppSettings) -> IssuedToken:
        """What ``taskbroker login`` calls: a new API token (shown once) for the user whose
        password this is."""
        user = await client.check_password(data.username, data.password)
        if user is None:
            raise NotAuthorizedException(WRONG)
        return await _issue(request, client, settings, user.username, data.name)

    @post("/auth/logout", status_code=HTTP_200_OK, summary="Sign out everywhere",
          tags=["auth"], responses=responses(401))
    async def logout(request: Request[Principal, Any, Any], client: Client,
                     state: State) -> Response[Deleted]:
        """Ends every web session of the caller (this browser's and any other's, a copied
        cookie included); API tokens stay until revoked."""
        username = request.user.username
        if not is_external(username):  # an IdP's user has no sessions here
            await client.change_user(username, UserChange(end_sessions=True))
            state.identities.forget_user(username)
        gone = Cookie(key=SESSION_COOKIE, value="", path="/", httponly=True, samesite="strict",
                      max_age=0, expires=0)
        return Response(Deleted(message="signed out"), cookies=[gone])

    @get("/auth/me", summary="Who is signed in", tags=["auth"], responses=responses(401))
    async def me(request: Request[Principal, Any, Any]) -> Me:
        caller = request.user
        return Me(username=caller.username, role=caller.role, via=caller.via)

    @get("/auth/session", summary="Whether this caller is signed in", tags=["auth"],
         exclude_from_auth=True, responses=responses(503))
    async def session(request: Request[Any, Any, Any]) -> Session:
        """What the web app asks when it opens: 200 either way, ``{"signed_in": false}``
        without a valid session or token (a 401 would be logged in the browser's console as
        a failed request on every visit to the sign-in page). ``/auth/me`` answers 401."""
        caller = await signed_in_caller(request)
        if caller is None:
            return Session(signed_in=False)
        return Session(signed_in=True, username=caller.username, role=caller.role,
                       via=caller.via)

    @get("/tokens", summary="Your API tokens", tags=["tokens"], responses=responses(401))
    async def list_tokens(request: Request[Principal, Any, Any],
                          client: Client) -> list[ApiToken]:
        records = _live(await client.list_tokens(request.user.username))
        return [ApiToken(id=r.id, name=r.name, created_at=r.created_at or datetime.now(UTC),
                         last_used_at=r.last_used_at, expires_at=r.expires_at) for r in records]

    @post("/tokens", status_code=HTTP_201_CREATED, summary="Create an API token (shown once)",
          tags=["tokens"], responses=responses(401, 403, 409))
    async def create_token(request: Request[Principal, Any, Any], data: JSONBody[TokenRequest],
                           client: Client, settings: AppSettings) -> IssuedToken:
        """The answer holds the token's secret: it is not kept, and not shown again. A caller
        signed in through OIDC gets one only with AUTH_OIDC_API_TOKENS (403 otherwise)."""
        if request.user.via == "oidc" and not settings.auth.auth_oidc_api_tokens:
            raise PermissionDeniedException(
                "a caller signed in through the identity provider (OIDC) cannot create API "
                "tokens here (AUTH_OIDC_API_TOKENS is off): use the identity provider's tokens")
        return await _issue(request, client, settings, request.user.username, data.name)

    @delete("/tokens/{token_id:str}", status_code=HTTP_200_OK, summary="Revoke an API token",
            tags=["tokens"], responses=responses(400, 401, 404))
    async def revoke_token(request: Request[Principal, Any, Any],
                           token_id: Annotated[str, PathParameter(pattern=TOKEN_ID_PATTERN)],
                           client: Client, state: State) -> Deleted:
        record = await client.get_token(token_id)
        if record is None or record.username != request.user.username:
            raise NotFoundException(f"you have no token {token_id[:40]}")
        await client.revoke_token(token_id)
        state.identities.forget_token(token_id)
        return Deleted(message=f"token {record.name!r} revoked")

    return [login, token_for_credentials, logout, me, session, list_tokens, create_token,
            revoke_token]
