"""The accounts contract: users and their API tokens, as the data service keeps them and
the kernel and the CLI send and read them (declared once, like :mod:`backend.jobs`).

Passwords are hashed by the data service (argon2) and never leave it; an API token's
secret is shown once, to its creator, and only its SHA-256 is stored.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

USERNAME_PATTERN = r"^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*$"
UserName = Annotated[
    str,
    Meta(min_length=1, max_length=64, pattern=USERNAME_PATTERN,
         description="User name: 1 to 64 letters, digits and . _ @ + -, not starting with a dot."),
]
Password = Annotated[str, Meta(min_length=8, max_length=256, description="8 to 256 characters.")]
TokenName = Annotated[str, Meta(min_length=1, max_length=100, description="What the token is for.")]
TOKEN_ID_PATTERN = r"^[0-9a-f]{32}$"
TokenId = Annotated[str, Meta(pattern=TOKEN_ID_PATTERN, description="Token id: 32 hex digits.")]
# A user of the identity provider (OIDC) is "oidc:<claim>": a local name has no ':' (see
# UserName), so no IdP claim can ever name a local user. Such a user has a record only
# once an operator disables it (`taskbroker users disable oidc:<claim>`).
OIDC_PREFIX = "oidc:"


def is_external(username: str) -> bool:
    """Whether ``username`` names an identity provider's user, not a local one."""
    return ":" in username


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Struct, kw_only=True):
    """A user as every part sees it (no password)."""

    username: str
    role: Role = Role.USER
    disabled: bool = False
    created_at: datetime | None = None
    # Sessions carry the version they were made under; a bump (sign-out everywhere, a new
    # password, disable) ends every earlier one.
    session_version: int = 0


class NewUser(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of the data service's ``POST /users``."""

    username: UserName
    password: Password
    role: Role = Role.USER


class UserChange(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Body of ``PATCH /users/{username}``: what to change."""

    password: Password | None = None
    role: Role | None = None
    disabled: bool | None = None
    end_sessions: bool | None = None  # true: every session of the user ends (sign-out everywhere)


class Credentials(Struct, kw_only=True, forbid_unknown_fields=True):
    """A user name and a password (sign-in; the data service's password check)."""

    username: Annotated[str, Meta(min_length=1, max_length=256)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class TokenRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of the kernel's ``POST /api/v1/tokens``."""

    name: TokenName


class TokenForUser(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of the kernel's ``POST /api/v1/auth/token``: credentials and the token's name
    (what ``taskbroker login`` sends)."""

    username: Annotated[str, Meta(min_length=1, max_length=256)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]
    name: TokenName = "cli"


class ApiToken(Struct, kw_only=True):
    """An API token as its owner sees it in a list (never its secret)."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None


class IssuedToken(ApiToken, kw_only=True):
    """The answer that creates a token: the only time its secret is shown."""

    token: str


class StoredToken(Struct, kw_only=True, forbid_unknown_fields=True):
    """An API token as the data service keeps it (body of ``POST /tokens``)."""

    id: TokenId
    username: Annotated[str, Meta(min_length=1, max_length=256)]
    name: TokenName
    token_hash: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None


def token_hash(secret: str) -> str:
    """What the data service keeps of an API token."""
    return hashlib.sha256(secret.encode()).hexdigest()
