"""Users and API tokens in the data service, and its door: the service token."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from backend.accounts import token_hash
from tests.services import TEST_SECRETS

PASSWORD = "correct horse battery"


@pytest.fixture
def name() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/job/0123456789abcdef01234567"), ("GET", "/jobs?user_id=x"), ("GET", "/users"),
    ("POST", "/reports"), ("POST", "/jobs/bulk"), ("GET", "/schema/openapi.json"),
])
@pytest.mark.parametrize("token", [None, "wrong-token", TEST_SECRETS["DATA_SERVICE_TOKEN"] + "x"])
async def test_every_route_but_the_probes_needs_the_service_token(store, method, path, token):
    headers = {"X-Service-Token": token} if token is not None else {}
    # Replace the client's own token for this request.
    answer = await store.request(method, path, headers={"X-Service-Token": "", **headers},
                                 json={} if method == "POST" else None)
    assert answer.status_code == 401, answer.text
    assert "service token" in answer.json()["detail"]


async def test_the_probes_answer_anyone(store):
    for path in ("/healthz", "/readyz"):
        answer = await store.get(path, headers={"X-Service-Token": ""})
        assert answer.status_code == 200


async def test_a_user_is_created_once_and_signs_in_with_its_password(store, name):
    made = await store.post("/users", json={"username": name, "password": PASSWORD})
    assert made.status_code == 201 and made.json()["role"] == "user"
    assert "password" not in made.text and "hash" not in made.text
    again = await store.post("/users", json={"username": name, "password": PASSWORD})
    assert again.status_code == 409
    good = await store.post("/users/check", json={"username": name, "password": PASSWORD})
    assert good.status_code == 200 and good.json()["username"] == name
    for wrong in ({"username": name, "password": "nope"},
                  {"username": f"{name}-unknown", "password": PASSWORD}):
        refused = await store.post("/users/check", json=wrong)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "wrong user name or password"  # says no more


async def test_a_user_can_be_disabled_given_a_new_password_and_made_admin(store, name):
    await store.post("/users", json={"username": name, "password": PASSWORD})
    changed = await store.patch(f"/users/{name}", json={"disabled": True, "role": "admin"})
    assert changed.json()["disabled"] is True and changed.json()["role"] == "admin"
    refused = await store.post("/users/check", json={"username": name, "password": PASSWORD})
    assert refused.status_code == 403
    await store.patch(f"/users/{name}", json={"disabled": False, "password": "a new one 42"})
    assert (await store.post("/users/check", json={
        "username": name, "password": PASSWORD})).status_code == 403
    assert (await store.post("/users/check", json={
        "username": name, "password": "a new one 42"})).status_code == 200
    listed = (await store.get("/users")).json()
    assert name in [user["username"] for user in listed]


@pytest.mark.parametrize("body", [
    {"username": "", "password": PASSWORD}, {"username": ".hidden", "password": PASSWORD},
    {"username": "has space", "password": PASSWORD}, {"username": "ok", "password": "short"},
    {"username": "ok", "password": PASSWORD, "role": "root"},
    # ':' is kept for the identity provider's users (oidc:<claim>): no local name has one.
    {"username": "oidc:admin", "password": PASSWORD},
])
async def test_bad_users_are_a_400(store, body):
    assert (await store.post("/users", json=body)).status_code == 400


async def test_tokens_are_kept_hashed_listed_revoked_and_noted_when_used(store, name):
    token_id = uuid.uuid4().hex
    body = {"id": token_id, "username": name, "name": "ci",
            "token_hash": token_hash("the secret")}
    assert (await store.post("/tokens", json=body)).status_code == 201
    assert (await store.post("/tokens", json=body)).status_code == 409
    listed = (await store.get("/tokens", params={"username": name})).json()
    assert [t["id"] for t in listed] == [token_id] and listed[0]["last_used_at"] is None
    await store.post(f"/tokens/{token_id}/used")
    assert (await store.get(f"/tokens/{token_id}")).json()["last_used_at"] is not None
    revoked = await store.delete(f"/tokens/{token_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await store.get("/tokens", params={"username": name})).json() == []
    assert (await store.get(f"/tokens/{token_id}")).json()["revoked_at"] is not None
    assert (await store.get(f"/tokens/{uuid.uuid4().hex}")).status_code == 404


async def test_a_new_password_or_disabling_revokes_every_token_and_ends_sessions(store, name):
    await store.post("/users", json={"username": name, "password": PASSWORD})

    async def token() -> str:
        token_id = uuid.uuid4().hex
        assert (await store.post("/tokens", json={"id": token_id, "username": name, "name": "t",
                                                  "token_hash": token_hash(token_id)})
                ).status_code == 201
        return token_id

    async def revoked(token_id: str) -> bool:
        return (await store.get(f"/tokens/{token_id}")).json()["revoked_at"] is not None

    version = (await store.get(f"/users/{name}")).json()["session_version"]
    first = await token()
    signed_out = await store.patch(f"/users/{name}", json={"end_sessions": True})
    assert signed_out.json()["session_version"] == version + 1
    assert not await revoked(first)  # signing out ends sessions only
    changed = await store.patch(f"/users/{name}", json={"password": "a new one 42"})
    assert changed.json()["session_version"] == version + 2 and await revoked(first)
    second = await token()
    await store.patch(f"/users/{name}", json={"role": "admin"})
    assert not await revoked(second)  # a role is read on every request: nothing to end
    disabled = await store.patch(f"/users/{name}", json={"disabled": True})
    assert disabled.json()["session_version"] == version + 3 and await revoked(second)
    assert (await store.get("/tokens", params={"username": name})).json() == []


async def test_an_identity_providers_user_gets_a_record_only_for_its_access(store, name):
    who = f"oidc:{name}"
    assert (await store.get(f"/users/{who}")).status_code == 404
    disabled = await store.patch(f"/users/{who}", json={"disabled": True})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True and disabled.json()["role"] == "user"
    for change in ({"password": PASSWORD}, {"role": "admin"}):
        assert (await store.patch(f"/users/{who}", json=change)).status_code == 400
    await store.patch(f"/users/{who}", json={"disabled": False})
    # It has no password here: no password signs it in.
    for password in ("", PASSWORD):
        check = await store.post("/users/check", json={"username": who, "password": password})
        assert check.status_code in (400, 403)


def test_a_data_service_without_a_token_refuses_to_start(mongo_url):
    run = subprocess.run([sys.executable, "-m", "backend.store", "--port", "1"],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "", "MONGODB_URL": mongo_url, "DATA_SERVICE_TOKEN": ""})
    assert run.returncode != 0 and "DATA_SERVICE_TOKEN" in run.stderr


async def test_no_answer_ever_carries_a_password_hash(store, name):
    await store.post("/users", json={"username": name, "password": PASSWORD})
    for path in ("/users", f"/users/{name}"):
        text = (await store.get(path)).text
        assert "argon2" not in text and "password" not in text
