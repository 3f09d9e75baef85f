"""OIDC callers against the real kernel and data service: they are users of their own
(``oidc:<claim>``), never a local user of the same name; they mint no API tokens unless
allowed; an operator can shut one out; a malformed or misdirected token is a 401."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.api.conftest import OpenKernel
from tests.integration.api.test_auth import (
    JOB,
    _Issuer,
    name,
    oidc_token,
    serve_issuer,
    submitted,
)
from tests.problems import problem_of

pytestmark = pytest.mark.parametrize("backend", ["redis"])


@pytest.fixture
def issuer() -> Iterator[tuple[str, Any]]:
    with serve_issuer() as served:
        yield served

ME = "/api/v1/auth/me"


async def test_an_oidc_claim_equal_to_a_local_admins_name_gets_nothing_of_theirs(
        open_kernel: OpenKernel, issuer: Any) -> None:
    url, key = issuer
    kernel = await open_kernel(AUTH_OIDC_ISSUER=url, AUTH_OIDC_AUDIENCE="taskbroker",
                               AUTH_OIDC_USER_CLAIM="preferred_username")
    root = name()
    admin = await kernel.sign_in(root, role="admin")
    theirs = await submitted(admin)
    # The attacker's IdP account carries the local admin's name in the claim.
    oidc = await kernel.client(oidc_token(url, key, preferred_username=root))
    me = await oidc.get(ME)
    assert me.status_code == 200, me.text
    assert me.json() == {"username": f"oidc:{root}", "role": "user", "via": "oidc"}
    assert (await oidc.get(JOB.format(theirs))).status_code == 404
    assert theirs not in [j["id"] for j in (await oidc.get("/api/v1/jobs")).json()["items"]]
    assert (await oidc.get("/api/v1/jobs", params={"all": "true"})).status_code == 403
    assert (await oidc.get("/api/v1/stats")).status_code == 403
    made = await oidc.post("/api/v1/tokens", json={"name": "x"})
    assert made.status_code == 403, made.text
    body = made.json()
    assert body["status"] == 403 and "AUTH_OIDC_API_TOKENS" in body["detail"]
    # The admin's own jobs are untouched and still theirs.
    assert (await admin.get(JOB.format(theirs))).json()["user_id"] == root


async def test_oidc_tokens_when_allowed_are_the_oidc_users_with_the_user_role(
        open_kernel: OpenKernel, issuer: Any, store: httpx.AsyncClient) -> None:
    url, key = issuer
    kernel = await open_kernel(AUTH_OIDC_ISSUER=url, AUTH_OIDC_AUDIENCE="taskbroker",
                               AUTH_OIDC_USER_CLAIM="preferred_username",
                               AUTH_OIDC_API_TOKENS="true")
    root = name()
    await kernel.sign_in(root, role="admin")
    oidc = await kernel.client(oidc_token(url, key, preferred_username=root))
    made = await oidc.post("/api/v1/tokens", json={"name": "x"})
    assert made.status_code == 201, made.text
    script = await kernel.client(made.json()["token"])
    me = (await script.get(ME)).json()
    assert me == {"username": f"oidc:{root}", "role": "user", "via": "token"}
    assert (await script.get("/api/v1/stats")).status_code == 403
    recorded = (await store.get(f"/tokens/{made.json()['id']}")).json()
    assert recorded["username"] == f"oidc:{root}"
    # An operator shuts the IdP's user out: its IdP tokens and its API tokens alike.
    who = f"oidc:{root}"
    disabled = await store.patch(f"/users/{who}", json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    kernel.app.state.identities.forget_user(who)  # what a few seconds of cache age would do
    kernel.app.state.identities.forget_token(made.json()["id"])
    assert (await oidc.get(ME)).status_code == 401
    assert (await script.get(ME)).status_code == 401
    # Enabled again: the IdP's tokens work, the API token made before stays revoked.
    await store.patch(f"/users/{who}", json={"disabled": False})
    kernel.app.state.identities.forget_user(who)
    assert (await oidc.get(ME)).status_code == 200
    assert (await script.get(ME)).status_code == 401
    # It has no password here and no role to raise.
    for change in ({"password": "a password 123"}, {"role": "admin"}):
        assert (await store.patch(f"/users/{who}", json=change)).status_code == 400


async def test_an_email_claim_counts_only_once_verified(
        open_kernel: OpenKernel, issuer: Any) -> None:
    url, key = issuer
    kernel = await open_kernel(AUTH_OIDC_ISSUER=url, AUTH_OIDC_AUDIENCE="taskbroker",
                               AUTH_OIDC_USER_CLAIM="email")
    email = f"{name()}@example.com"
    for unverified in ({}, {"email_verified": False}, {"email_verified": "false"}):
        client = await kernel.client(oidc_token(url, key, email=email, **unverified))
        assert (await client.get(ME)).status_code == 401, unverified
    verified = await kernel.client(oidc_token(url, key, email=email, email_verified=True))
    assert (await verified.get(ME)).json()["username"] == f"oidc:{email}"
    # A claim that cannot be a job's owner is refused, not stored.
    blank = await kernel.client(oidc_token(url, key, email="a b@example.com",
                                           email_verified=True))
    assert (await blank.get(ME)).status_code == 401


def _crafted(header: dict[str, Any], payload: dict[str, Any], signature: str = "AAAA") -> str:
    encode = jwt.utils.base64url_encode
    return (encode(json.dumps(header).encode()).decode() + "."
            + encode(json.dumps(payload).encode()).decode() + "." + signature)


async def test_a_token_whose_algorithm_does_not_fit_its_key_is_a_401(
        open_kernel: OpenKernel, issuer: Any) -> None:
    url, key = issuer
    kernel = await open_kernel(AUTH_OIDC_ISSUER=url, AUTH_OIDC_AUDIENCE="taskbroker")
    # The RSA key's id, as anyone reads it from the issuer's public JWKS.
    async with httpx.AsyncClient() as anyone:
        kid = (await anyone.get(f"{url}/jwks")).json()["keys"][0]["kid"]
    claims = {"sub": "x", "iss": url, "aud": "taskbroker", "exp": 4102444800}
    crafted = {
        "ES256 with the RSA key": _crafted({"alg": "ES256", "kid": kid}, claims),
        "ES384 with the RSA key": _crafted({"alg": "ES384", "kid": kid}, claims),
        "PS256 where the key says RS256": _crafted({"alg": "PS256", "kid": kid}, claims),
        "a key id that is a list": _crafted({"alg": "RS256", "kid": [kid]}, claims),
        "a signature that is not base64": _crafted({"alg": "RS256", "kid": kid}, claims, "!!"),
    }
    for what, token in crafted.items():
        client = await kernel.client(token)
        answer = await client.get(ME)
        assert answer.status_code == 401, (what, answer.status_code, answer.text)
        assert problem_of(answer)["status"] == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    good = await kernel.client(oidc_token(url, key))
    assert (await good.get(ME)).status_code == 200  # the checks refuse only the crafted


async def test_an_issuer_with_a_trailing_slash_works(
        open_kernel: OpenKernel, issuer: Any) -> None:
    url, key = issuer
    slashed = url + "/"  # as Auth0 names itself, in its discovery document and its tokens
    _Issuer.documents["/.well-known/openid-configuration"]["issuer"] = slashed
    kernel = await open_kernel(AUTH_OIDC_ISSUER=slashed, AUTH_OIDC_AUDIENCE="taskbroker")
    client = await kernel.client(oidc_token(url, key, iss=slashed))
    answer = await client.get(ME)
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == "oidc:carol@example.com"


@pytest.mark.parametrize("misdirected", ["another issuer", "a redirect"])
async def test_keys_from_a_misdirected_discovery_are_not_trusted(
        open_kernel: OpenKernel, issuer: Any, misdirected: str) -> None:
    url, key = issuer
    discovery = _Issuer.documents["/.well-known/openid-configuration"]
    if misdirected == "another issuer":
        # A discovery document that is some other issuer's (a mix-up, or a swapped one).
        discovery["issuer"] = "https://someone-else.example"
    else:
        # The keys are where the issuer says, not wherever that address sends us.
        discovery["jwks_uri"] = f"{url}/moved"
        _Issuer.documents["/moved"] = f"{url}/jwks"
    kernel = await open_kernel(AUTH_OIDC_ISSUER=url, AUTH_OIDC_AUDIENCE="taskbroker")
    client = await kernel.client(oidc_token(url, key))
    assert (await client.get(ME)).status_code == 401
