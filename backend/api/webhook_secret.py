"""``/api/v1/webhooks/secret``: your webhook signing secret, made or rotated, shown once.

Nothing secret is stored: the data service keeps a random key id per user, and the
secret is derived from it and WEBHOOK_SECRET (:func:`backend.webhook_signing.derive_secret`),
which this kernel holds as the dispatcher does. A rotation writes a new key id, so the
old secret stops signing (within the sender's cache time, ``KEY_CACHE_SECONDS`` in
:mod:`backend.dispatcher.webhook_sender`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ServiceUnavailableException
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_201_CREATED

from backend.api.bodies import responses
from backend.api.dependencies import AppSettings, Client
from backend.api.security import Principal
from backend.store.client import DataServiceClient
from backend.web import unprocessable
from backend.webhook_signing import WebhookSecret, WebhookSecretState, derive_secret


@get("/webhooks/secret", summary="Whether you have a webhook secret (never the secret)",
     tags=["webhooks"], responses=responses(401, 503))
async def secret_state(request: Request[Principal, Any, Any], client: Client) -> WebhookSecretState:
    key = await client.get_webhook_key(request.user.username)
    return WebhookSecretState(exists=key is not None,
                              rotated_at=key.rotated_at if key else None)


@post("/webhooks/secret", status_code=HTTP_201_CREATED, tags=["webhooks"],
      summary="Make or rotate your webhook secret (shown once)", responses=responses(401, 503))
async def rotate_secret(request: Request[Principal, Any, Any], client: Client,
                        settings: AppSettings) -> WebhookSecret:
    """Your first webhook secret, or a new one: the answer is the only time it is shown.
    The one before stops signing your deliveries within 30 s (the sender's cache)."""
    master = settings.webhooks.webhook_secret
    if not master:
        raise ServiceUnavailableException(
            "webhook secrets cannot be made here: WEBHOOK_SECRET is not set on the kernel "
            "(ask the operator)")
    username = request.user.username
    key = await client.rotate_webhook_key(username)
    return WebhookSecret(secret=derive_secret(master, username, key.key_id),
                         rotated_at=key.rotated_at)


class WebhookOwners:
    """Who may submit a job with a ``callback_url``: its owner must have a webhook secret,
    since deliveries are signed with it and never with anything shared. A user who has
    one keeps having one (a rotation replaces it), so a yes is remembered."""

    def __init__(self, client: DataServiceClient) -> None:
        self._client = client
        self._known: set[str] = set()

    async def require(self, owner: str) -> None:
        """Raise a 422 naming ``callback_url`` if ``owner`` has no webhook secret yet."""
        if owner in self._known:
            return
        if await self._client.get_webhook_key(owner) is None:
            message = (f"{owner} has no webhook secret yet, and deliveries are signed with "
                       "it: make one first (POST /api/v1/webhooks/secret, or `taskbroker "
                       "webhooks rotate-secret`), then submit again")
            raise unprocessable("callback_url", message, f"callback_url: {message}")
        self._known.add(owner)


WEBHOOK_SECRET_ROUTES: list[HTTPRouteHandler] = [secret_state, rotate_secret]
