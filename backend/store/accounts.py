"""Users and API tokens in the data service: Beanie documents and their routes.

Only the kernel (and an operator's CLI) reach these, with the service token like every
other route. A password is hashed here (argon2) and checked here; it never leaves. An
API token is kept as its SHA-256; revoking it keeps the record (with ``revoked_at``),
so a list still shows it and a revoked token can never be confused with an unknown one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pymongo
from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from beanie import Document
from litestar import Controller, delete, get, patch, post
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_409_CONFLICT
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from backend.accounts import (
    TOKEN_ID_PATTERN,
    Credentials,
    NewUser,
    Role,
    StoredToken,
    User,
    UserChange,
    is_external,
)
from backend.jobs import utcnow

_hasher = PasswordHasher()

UsernameParam = Annotated[str, Parameter(min_length=1, max_length=256)]
TokenIdParam = Annotated[str, Parameter(pattern=TOKEN_ID_PATTERN)]


class UserDocument(Document):
    username: str
    password_hash: str
    role: Role = Role.USER
    disabled: bool = False
    created_at: datetime
    session_version: int = 0

    class Settings:
        name = "users"
        indexes = [IndexModel([("username", pymongo.ASCENDING)], unique=True,
                              name="username_unique")]


class ApiTokenDocument(Document):
    token_id: str
    username: str
    name: str
    token_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None

    class Settings:
        name = "api_tokens"
        indexes = [IndexModel([("token_id", pymongo.ASCENDING)], unique=True,
                              name="token_id_unique"),
                   IndexModel([("username", pymongo.ASCENDING)], name="tokens_of_a_user")]


async def _hash(password: str) -> str:
    # Argon2 takes tens of ms of CPU on purpose: off the event loop.
    return await to_thread.run_sync(_hasher.hash, password)


def _user(doc: UserDocument) -> User:
    return User(username=doc.username, role=doc.role, disabled=doc.disabled,
                created_at=doc.created_at, session_version=doc.session_version)


def _token(doc: ApiTokenDocument) -> StoredToken:
    return StoredToken(id=doc.token_id, username=doc.username, name=doc.name,
                       token_hash=doc.token_hash, created_at=doc.created_at,
                       last_used_at=doc.last_used_at, revoked_at=doc.revoked_at,
                       expires_at=doc.expires_at)


async def _find_user(username: str) -> UserDocument:
    doc = await UserDocument.find_one({"username": username})
    if doc is None:
        raise NotFoundException(f"no user {username!r}")
    return doc


async def _external_user(username: str) -> UserDocument:
    """The record of an identity provider's user, made on first need (no password: an
    empty hash never verifies, so it cannot sign in with one)."""
    doc = await UserDocument.find_one({"username": username})
    if doc is not None:
        return doc
    try:
        await UserDocument(username=username, password_hash="", created_at=utcnow()).insert()
    except DuplicateKeyError:
        pass  # made meanwhile by a concurrent change
    return await _find_user(username)


class AccountController(Controller):
    """Users and API tokens."""

    tags = ["accounts"]

    @post("/users", status_code=HTTP_201_CREATED, summary="Create a user")
    async def create_user(self, data: JSONBody[NewUser]) -> User:
        doc = UserDocument(username=data.username, password_hash=await _hash(data.password),
                           role=data.role, created_at=utcnow())
        try:
            await doc.insert()
        except DuplicateKeyError:
            raise ClientException(status_code=HTTP_409_CONFLICT,
                                  detail=f"user {data.username!r} exists already") from None
        return _user(doc)

    @get("/users", summary="Every user")
    async def list_users(self) -> list[User]:
        return [_user(doc) async for doc in UserDocument.find_all().sort("username")]

    @get("/users/{username:str}", summary="One user")
    async def get_user(self, username: UsernameParam) -> User:
        return _user(await _find_user(username))

    @patch("/users/{username:str}", summary="Change a user's password, role or access")
    async def change_user(self, username: UsernameParam, data: JSONBody[UserChange]) -> User:
        """A new password or disabling ends every session and revokes every API token of
        the user (so enabling again brings none back); ``end_sessions`` ends the sessions.
        An identity provider's user (``oidc:...``) gets a record here on its first change:
        only its access can change (it has no password here and is always a ``user``)."""
        if is_external(username):
            if data.password is not None or data.role is not None:
                raise ClientException(f"{username!r} signs in through the identity provider: "
                                      "only its access (disable, enable) can change here")
            doc = await _external_user(username)
        else:
            doc = await _find_user(username)
        if data.password is not None:
            doc.password_hash = await _hash(data.password)
        if data.role is not None:
            doc.role = data.role
        if data.disabled is not None:
            doc.disabled = data.disabled
        ends_access = data.password is not None or data.disabled is True
        if ends_access or data.end_sessions:
            doc.session_version += 1
        await doc.save()
        if ends_access:
            await ApiTokenDocument.get_pymongo_collection().update_many(
                {"username": username, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}})
        return _user(doc)

    @post("/users/check", status_code=HTTP_200_OK, summary="Check a user's password")
    async def check_password(self, data: JSONBody[Credentials]) -> User:
        """The user, if the password is theirs and they may sign in; else 403 (the answer
        does not tell an unknown user from a wrong password; 401 is kept for a missing or
        wrong service token, so a misconfigured caller never reads it as a wrong password)."""
        doc = await UserDocument.find_one({"username": data.username})
        wrong = PermissionDeniedException("wrong user name or password")
        if doc is None:
            await _hash(data.password)  # the same work as a known user: no timing hint
            raise wrong
        try:
            await to_thread.run_sync(_hasher.verify, doc.password_hash, data.password)
        except (VerificationError, InvalidHashError):
            raise wrong from None
        if doc.disabled:
            raise wrong
        if _hasher.check_needs_rehash(doc.password_hash):
            doc.password_hash = await _hash(data.password)
            await doc.save()
        return _user(doc)

    @post("/tokens", status_code=HTTP_201_CREATED, summary="Record an API token (its hash)")
    async def create_token(self, data: JSONBody[StoredToken]) -> StoredToken:
        doc = ApiTokenDocument(token_id=data.id, username=data.username, name=data.name,
                               token_hash=data.token_hash, created_at=utcnow(),
                               expires_at=data.expires_at)
        try:
            await doc.insert()
        except DuplicateKeyError:
            raise ClientException(status_code=HTTP_409_CONFLICT,
                                  detail=f"token {data.id} exists already") from None
        return _token(doc)

    @get("/tokens", summary="A user's API tokens, revoked ones left out")
    async def list_tokens(self, username: UsernameParam) -> list[StoredToken]:
        found = ApiTokenDocument.find({"username": username, "revoked_at": None})
        return [_token(doc) async for doc in found.sort("created_at")]

    @get("/tokens/{token_id:str}", summary="One API token (revoked or not)")
    async def get_token(self, token_id: TokenIdParam) -> StoredToken:
        doc = await ApiTokenDocument.find_one({"token_id": token_id})
        if doc is None:
            raise NotFoundException(f"no token {token_id}")
        return _token(doc)

    @delete("/tokens/{token_id:str}", status_code=HTTP_200_OK, summary="Revoke an API token")
    async def revoke_token(self, token_id: TokenIdParam) -> StoredToken:
        doc = await ApiTokenDocument.find_one({"token_id": token_id})
        if doc is None:
            raise NotFoundException(f"no token {token_id}")
        if doc.revoked_at is None:
            doc.revoked_at = utcnow()
            await doc.save()
        return _token(doc)

    @post("/tokens/{token_id:str}/used", status_code=HTTP_200_OK,
          summary="Note that an API token was used")
    async def token_used(self, token_id: TokenIdParam) -> None:
        await ApiTokenDocument.get_pymongo_collection().update_one(
            {"token_id": token_id}, {"$set": {"last_used_at": utcnow()}})
