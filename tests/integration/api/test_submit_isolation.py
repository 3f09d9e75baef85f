"""One user's job the store cannot hold never fails another user's submit (F4).

Concurrent submits share one data service call (group commit), and the store refuses a
whole bulk for one job it cannot hold. The kernel checks params with the store's own
check (backend/storable.py) before a job joins a group; and should a job the store
refuses still reach it, only that job's submit is refused, the others are sent again.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from backend.storable import MAX_DEPTH
from tests.integration.api.conftest import OpenKernel
from tests.problems import problem_of
from tests.services import create_user, sign_in

SUBMIT = "/api/v1/job_executor/async"
EACH = 50


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"d": value}
    return value


# What msgspec (and so the kernel's body) accepts but BSON or MongoDB cannot hold, with
# the words the refusal must say.
UNSTORABLE: list[tuple[dict[str, Any], str]] = [
    ({"$where": 1}, "'$where'"),
    ({"ok": {"a\u0000b": 1}}, "params.ok"),
    ({"n": 123456789012345678901234567890}, "params.n"),
    (_deep(MAX_DEPTH + 1), "nested deeper"),
]


def _body(params: dict[str, Any]) -> dict[str, Any]:
    return {"job_name": "echo", "estimated_time": 1, "params": params}


async def _stored(store: httpx.AsyncClient, user: str) -> int:
    answer = await store.get("/jobs", params={"user_id": user, "limit": 100})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


async def _race(good: httpx.AsyncClient, bad: httpx.AsyncClient,
                ) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """EACH clean submits of one user and EACH unstorable ones of another, all at once."""
    clean = [good.post(SUBMIT, json=_body({"n": n})) for n in range(EACH)]
    poisoned = [bad.post(SUBMIT, json=_body(UNSTORABLE[n % len(UNSTORABLE)][0]))
                for n in range(EACH)]
    answers = await asyncio.gather(*(item for pair in zip(clean, poisoned, strict=True)
                                     for item in pair))
    return list(answers[0::2]), list(answers[1::2])


def _assert_refused_naming_params(answers: list[httpx.Response]) -> None:
    for n, answer in enumerate(answers):
        assert answer.status_code == 400, (n, answer.status_code, answer.text)
        body = problem_of(answer)
        assert body["errors"][0]["field"] == "params", body
        assert UNSTORABLE[n % len(UNSTORABLE)][1] in body["detail"], body


@pytest.mark.parametrize("backend", ["redis"])
async def test_a_users_unstorable_params_never_fail_another_users_submits(
        kernel_process: Any, data_service: str, store: httpx.AsyncClient) -> None:
    url, _ = kernel_process()
    victim, attacker = (f"u-{uuid.uuid4().hex[:10]}" for _ in range(2))
    clients = []
    for who in (victim, attacker):
        create_user(data_service, who)
        clients.append(httpx.AsyncClient(base_url=url, timeout=60, headers={
            "Authorization": f"Bearer {sign_in(url, who)}"}))
    async with clients[0] as good, clients[1] as bad:
        clean, poisoned = await _race(good, bad)
        assert [a.status_code for a in clean] == [200] * EACH, [
            a.text for a in clean if a.status_code != 200][:3]
        _assert_refused_naming_params(poisoned)
        # A batch: the bad item alone is refused, the good one recorded.
        batch = await bad.post("/api/v1/jobs/batch", json={"jobs": [
            _body({"$set": {"role": "admin"}}), _body({"fine": True})]})
        assert batch.status_code == 207, batch.text
        first, second = batch.json()["results"]
        assert first["status"] == 400 and first["errors"][0]["field"] == "params", first
        assert "job_id" in second
    assert await _stored(store, victim) == EACH
    assert await _stored(store, attacker) == 1  # the batch's good item, nothing else


@pytest.mark.parametrize("backend", ["redis"])
async def test_a_job_the_store_refuses_fails_only_its_own_submit(
        open_kernel: OpenKernel, store: httpx.AsyncClient, user: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the kernel's own check, the store's refusal of the group commit's bulk is
    # what remains: it must reach the one submit it is about, and no other.
    monkeypatch.setattr("backend.api.jobs.check_storable", lambda field, value: None)
    kernel = await open_kernel()
    attacker = f"u-{uuid.uuid4().hex[:10]}"
    bad = await kernel.sign_in(attacker)
    clean, poisoned = await _race(kernel.http, bad)
    assert [a.status_code for a in clean] == [200] * EACH, [
        a.text for a in clean if a.status_code != 200][:3]
    _assert_refused_naming_params(poisoned)
    # A batch request is one submit: refused whole, naming its own item.
    batch = await bad.post("/api/v1/jobs/batch", json={"jobs": [
        _body({"fine": True}), _body({"$set": {"role": "admin"}})]})
    assert batch.status_code == 400, batch.text
    assert problem_of(batch)["errors"][0]["field"] == "jobs[1].params", batch.text
    assert await _stored(store, user) == EACH
    assert await _stored(store, attacker) == 0
    # Still answers after all that: a clean submit of the attacker goes through.
    assert (await bad.post(SUBMIT, json=_body({"fine": True}))).status_code == 200


@pytest.mark.parametrize("backend", ["redis"])
async def test_large_submits_that_together_exceed_the_stores_body_limit_all_go_through(
        open_kernel: OpenKernel, store: httpx.AsyncClient, user: str) -> None:
    # Each submit is well within its limits (a 256 KiB queue message), but a group commit
    # of several is over the data service's MAX_BODY_BYTES: the store refuses the bulk
    # naming no job, so each submit is recorded on its own instead.
    kernel = await open_kernel()
    other = await kernel.sign_in(f"u-{uuid.uuid4().hex[:10]}")
    large = _body({"blob": "x" * 200_000})
    answers = await asyncio.gather(*(client.post(SUBMIT, json=large)
                                     for _ in range(4) for client in (kernel.http, other)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers][:2]
    assert await _stored(store, user) == 4
