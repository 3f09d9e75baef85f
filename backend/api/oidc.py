"""An OIDC issuer's signing keys, and the check of its bearer JWTs.

The issuer and its ``jwks_uri`` must be ``https://`` (``http://`` only on 127.0.0.1, ::1 or
localhost: a test or an IdP on the same machine); the discovery document must name the
configured issuer; a token's ``alg`` must fit the type of the key its ``kid`` names. Any
token that fails a check, however malformed, is a 401, never an error of ours.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from litestar.exceptions import NotAuthorizedException

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC"}  # an algorithm's prefix: its key's kty
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
JWKS_CACHE_SECONDS = 3600
JWKS_RETRY_SECONDS = 60.0  # at most one fetch this often for keys not known yet
FETCH_TIMEOUT = 5.0


def url_problem(url: str, what: str) -> str | None:
    """Why ``url`` may not serve an issuer's keys (anyone on the path could swap them), or None."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return None
    return (f"{what} must be an https:// URL (http:// only on 127.0.0.1 or localhost), "
            f"not {url!r}")


def _fetch(url: str) -> Any:
    # No redirects: the keys come from the very address the issuer named.
    answer = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    answer.raise_for_status()
    return answer.json()


class OidcIssuer:
    """An issuer's signing keys, from its discovery document, kept in memory.

    Checking a token never waits on the network: the keys are fetched at start
    (:meth:`refresh`, in a thread), again every JWKS_CACHE_SECONDS, and when a token names
    a key id not known yet (a rotation), at most once per JWKS_RETRY_SECONDS, always in a
    background thread. Meanwhile such a token is a 401, so a flood of made-up key ids
    costs one fetch a minute, not one per request.
    """

    def __init__(self, issuer: str, audience: str) -> None:
        problem = url_problem(issuer, "AUTH_OIDC_ISSUER")
        if problem:
            raise SystemExit(problem)
        self.issuer = issuer.rstrip("/")
        # Some IdPs (Auth0) end their issuer in "/", others not: both name the same one.
        self.accepted = (self.issuer, self.issuer + "/")
        self.audience = audience
        self._keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
        self._fetched = float("-inf")
        self._tried = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Fetch the issuer's keys now (blocking: call it from a thread)."""
        with self._lock:
            self._tried = time.monotonic()
        try:
            discovery = _fetch(f"{self.issuer}/.well-known/openid-configuration")
            named = str(discovery.get("issuer", "")).rstrip("/")
            if named != self.issuer:
                raise ValueError(f"its discovery document names another issuer: {named!r}")
            jwks_uri = str(discovery["jwks_uri"])
            problem = url_problem(jwks_uri, "the jwks_uri")
            if problem:
                raise ValueError(problem)
            found = _fetch(jwks_uri)["keys"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("could not fetch the OIDC keys of %s: %s", self.issuer, exc)
            return
        keys = {}
        for entry in found if isinstance(found, list) else []:
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWTError, TypeError, ValueError, AttributeError):
                continue  # a key of a type we do not use (or broken): not one to trust
            keys[key.key_id] = (key, entry.get("alg"))
        with self._lock:
            self._keys, self._fetched = keys, time.monotonic()
        log.info("OIDC: %d signing keys of %s", len(keys), self.issuer)

    def _refresh_soon(self) -> None:
        with self._lock:
            if time.monotonic() - self._tried < JWKS_RETRY_SECONDS:
                return
            self._tried = time.monotonic()
        threading.Thread(target=self.refresh, name="oidc-jwks", daemon=True).start()

    def decode(self, encoded: str, header: dict[str, Any]) -> dict[str, Any]:
        """The token's claims once its signature, algorithm, issuer, audience and expiry
        hold; else :class:`NotAuthorizedException`."""
        if time.monotonic() - self._fetched > JWKS_CACHE_SECONDS:
            self._refresh_soon()  # the keys in hand still serve meanwhile
        kid, alg = header.get("kid"), header.get("alg")
        found = self._keys.get(kid) if isinstance(kid, str | None) else None
        if found is None and kid is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))
        if found is None:
            self._refresh_soon()
            raise NotAuthorizedException("the token's signing key is not one of the "
                                         "issuer's known keys (try again shortly)")
        key, declared = found
        # The header picks the algorithm: it must be one the key is for, or a crafted
        # header makes the library use the key wrongly (ES256 with an RSA key, say).
        if (alg not in ALGORITHMS or KEY_TYPE.get(str(alg)[:2]) != key.key_type
                or (declared is not None and declared != alg)):
            raise NotAuthorizedException("the token's algorithm does not fit its key")
        try:
            return jwt.decode(encoded, key=key.key, algorithms=[alg], issuer=self.accepted,
                              audience=self.audience,
                              options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise NotAuthorizedException(f"the OIDC token is not valid: {exc}") from exc
