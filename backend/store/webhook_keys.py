"""Each user's webhook key id: a Beanie document and its two routes.

The key id is a random nonce, not a secret: a user's webhook signing secret is derived
from it and WEBHOOK_SECRET (:func:`backend.webhook_signing.derive_secret`), which this service
never holds, so MongoDB keeps nothing that signs a delivery. A rotation writes a new key
id; the old secret then stops being used. Kept in a collection of its own, keyed by the
jobs' ``user_id``, because not every owner of a job has a local user record (an OIDC
principal has none). Behind the service token like every route here.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pymongo
from beanie import Document
from litestar import Controller, get, post
from litestar.exceptions import NotFoundException
from litestar.status_codes import HTTP_200_OK
from pymongo import IndexModel

from backend.jobs import utcnow
from backend.store.routes import UserIdParam
from backend.webhook_signing import WebhookKey


class WebhookKeyDocument(Document):
    username: str
    key_id: str
    rotated_at: datetime

    class Settings:
        name = "webhook_keys"
        indexes = [IndexModel([("username", pymongo.ASCENDING)], unique=True,
                              name="webhook_key_of_a_user")]


def _key(doc: WebhookKeyDocument) -> WebhookKey:
    rotated_at = doc.rotated_at  # naive when read back: MongoDB keeps UTC
    if rotated_at.tzinfo is None:
        rotated_at = rotated_at.replace(tzinfo=UTC)
    return WebhookKey(username=doc.username, key_id=doc.key_id,
                      rotated_at=rotated_at.astimezone(UTC))


class WebhookKeyController(Controller):
    """A user's webhook key id: read (the sender, the kernel) and rotate (the kernel)."""

    path = "/webhook-keys"
    tags = ["webhooks"]

    @get("/{username:str}", summary="A user's webhook key id (404: none yet)")
    async def get_key(self, username: UserIdParam) -> WebhookKey:
        doc = await WebhookKeyDocument.find_one({"username": username})
        if doc is None:
            raise NotFoundException(f"user {username!r} has no webhook key yet")
        return _key(doc)

    @post("/{username:str}", status_code=HTTP_200_OK,
          summary="Give a user a new webhook key id (the first, or a rotation)")
    async def rotate_key(self, username: UserIdParam) -> WebhookKey:
        key = WebhookKey(username=username, key_id=secrets.token_hex(16), rotated_at=utcnow())
        # One upsert: two rotations at once leave one of the two keys, never a duplicate.
        await WebhookKeyDocument.get_pymongo_collection().update_one(
            {"username": username},
            {"$set": {"key_id": key.key_id, "rotated_at": key.rotated_at}}, upsert=True)
        return key
