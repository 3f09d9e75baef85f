"""Bad input gets a 4xx that names the field; no input at all gets a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.integration.store.conftest import MakeJob
from tests.problems import problem_of

GOOD = {"name": "echo", "user_id": "fuzz-user"}
TOO_DEEP: Any = 1
for _ in range(40):
    TOO_DEEP = {"d": TOO_DEEP}


def _named(response: httpx.Response, field: str) -> bool:
    """Whether the problem names ``field`` (in its detail or one of its ``errors``)."""
    body = problem_of(response)
    return field in body["detail"] or any(
        field in entry["field"] or field in entry["message"] for entry in body["errors"])


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "u"}, "name"),
    ({"name": "echo"}, "user_id"),
    ({**GOOD, "name": 5}, "name"),
    ({**GOOD, "name": ""}, "name"),
    ({**GOOD, "name": "has space"}, "name"),
    ({**GOOD, "name": "x" * 101}, "name"),
    ({**GOOD, "user_id": "a/b"}, "user_id"),
    ({**GOOD, "user_id": "u" * 129}, "user_id"),
    ({**GOOD, "user_id": None}, "user_id"),
    ({**GOOD, "description": "d" * 2001}, "description"),
    ({**GOOD, "description": ["list"]}, "description"),
    ({**GOOD, "estimated_time": -1}, "estimated_time"),
    ({**GOOD, "estimated_time": "soon"}, "estimated_time"),
    ({**GOOD, "estimated_time": 10**9}, "estimated_time"),
    ({**GOOD, "params": [1, 2]}, "params"),
    ({**GOOD, "params": "text"}, "params"),
    ({**GOOD, "params": {"big": 2**64}}, "params"),
    ({**GOOD, "params": {"$where": "1"}}, "params"),
    ({**GOOD, "params": {"nul\u0000key": 1}}, "params"),
    ({**GOOD, "params": {"deep": TOO_DEEP}}, "params"),
    ({**GOOD, "executor": "no spaces allowed"}, "executor"),
    ({**GOOD, "executor": ""}, "executor"),
    ({**GOOD, "status": "succeeded"}, "status"),
    ({**GOOD, "id": "0123456789abcdef01234567"}, "id"),
    ({**GOOD, "unknown": 1}, "unknown"),
])
async def test_bad_create_bodies_are_400_naming_the_field(
        store: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    response = await store.post("/job/", json=body)
    assert response.status_code == 400, response.text
    assert _named(response, field), response.text


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "done"}, "status"),
    ({"status": None}, "status"),
    ({"progress": 101}, "progress"),
    ({"progress": -0.5}, "progress"),
    ({"progress": "half"}, "progress"),
    ({"attempts": -1}, "attempts"),
    ({"attempts": 1.5}, "attempts"),
    ({"error": "e" * 20_001}, "error"),
    ({"worker_id": "w" * 201}, "worker_id"),
    ({"estimated_time": -3}, "estimated_time"),
    ({"result": {"n": -(2**63) - 1}}, "result"),
    ({"result": [{"$set": 1}]}, "result"),
    ({"name": "renamed"}, "name"),
    ({"user_id": "someone-else"}, "user_id"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
])
async def test_bad_update_bodies_are_400_naming_the_field(
        store: httpx.AsyncClient, make_job: MakeJob, body: dict[str, Any], field: str) -> None:
    job_id = await make_job()
    response = await store.put(f"/job/{job_id}", json=body)
    assert response.status_code == 400, response.text
    assert _named(response, field), response.text
    assert (await store.get(f"/job/{job_id}")).json()["status"] == "created"


@pytest.mark.parametrize("job_id", [
    "xyz", "0123456789abcdef0123456", "0123456789abcdef012345678", "0123456789ABCDEF01234567",
    "zzzzzzzzzzzzzzzzzzzzzzzz", "%20" * 24, "../../etc", "a" * 5000, "null", "%00",
])
async def test_malformed_ids_are_400_or_404_on_every_route(store: httpx.AsyncClient,
                                                           job_id: str) -> None:
    for method, path, body in [("GET", f"/job/{job_id}", None),
                               ("PUT", f"/job/{job_id}", {"progress": 1}),
                               ("DELETE", f"/job/{job_id}", None),
                               ("DELETE", f"/jobs/{job_id}", None)]:
        response = await store.request(method, path, json=body)
        assert response.status_code in (400, 404), (method, path, response.text)
        if response.status_code == 400:
            assert _named(response, "job_id"), response.text


@pytest.mark.parametrize("content", [
    b"{not json", b"", b"null", b"[]", b'"text"', b"123", b'{"name": "echo", "user_id": "u",}',
    b"\xff\xfe\x00", b'{"name": "echo", "user_id": "\\ud800"}', b"[" * 20_000,
    b'{"name": "\xff\xfe", "user_id": "u"}',  # invalid UTF-8 inside a JSON string
    b'{"name":"echo","user_id":"u","params":{"x":1e400}}',
    b'{"name":"echo","user_id":"u","params":{"x":NaN}}',
])
async def test_invalid_json_is_400(store: httpx.AsyncClient, content: bytes) -> None:
    for method, path in [("POST", "/job/"), ("PUT", "/job/0123456789abcdef01234567")]:
        response = await store.request(method, path, content=content,
                                       headers={"content-type": "application/json"})
        assert response.status_code == 400, (method, content[:40], response.text)


async def test_bodies_over_the_limit_are_413(store: httpx.AsyncClient, make_job: MakeJob) -> None:
    # The in-process app runs with MAX_BODY_BYTES = 64 KiB.
    big = {**GOOD, "params": {"blob": "x" * 70_000}}
    assert (await store.post("/job/", json=big)).status_code == 413
    job_id = await make_job()
    response = await store.put(f"/job/{job_id}", json={"result": "y" * 70_000})
    assert response.status_code == 413
    assert (await store.get(f"/job/{job_id}")).json()["result"] is None
    fits = {**GOOD, "params": {"blob": "x" * 50_000}}
    assert (await store.post("/job/", json=fits)).status_code == 201


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
    ("limit=99999999999999999999999", "limit"), ("offset=-1", "offset"),
    ("offset=99999999999999999999", "offset"), ("offset=x", "offset"),
    ("status=done", "status"), ("status=", "status"), ("cursor=%%%", "cursor"),
    ("cursor=bm90LWEtY3Vyc29y", "cursor"), ("cursor=" + "A" * 300, "cursor"),
    ("cursor=MTIzOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nw&offset=3", "cursor"),
])
async def test_bad_list_queries_are_400_naming_the_parameter(
        store: httpx.AsyncClient, query: str, field: str) -> None:
    response = await store.get(f"/job/user/someone?{query}")
    assert response.status_code == 400, (query, response.text)
    assert _named(response, field), response.text


async def test_unknown_status_lists_the_valid_ones(store: httpx.AsyncClient) -> None:
    response = await store.get("/job/user/someone?status=finished")
    assert response.status_code == 400
    for status in ("created", "queued", "running", "retrying", "succeeded", "failed",
                   "cancelled"):
        assert status in response.json()["detail"]


# ---- fuzz: arbitrary JSON in every field, arbitrary text in every path and query ----

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
TEXT = st.text(max_size=30)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "name": st.just("echo"), "user_id": st.just("fuzz-user"), "description": TEXT,
    "estimated_time": st.floats(-10, 1e6), "params": st.dictionaries(TEXT, JSON, max_size=4),
    "executor": st.sampled_from(["standard", "priority"]), "result": JSON, "error": TEXT,
    "status": st.sampled_from(["created", "queued", "running", "succeeded", "cancelled"]),
    "progress": st.floats(-5, 105), "attempts": st.integers(-2, 1002), "worker_id": TEXT,
}


def _mostly(likely: st.SearchStrategy[Any],
            rarely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``likely`` four times in five, else ``rarely``."""
    return st.integers(0, 4).flatmap(lambda n: likely if n else rarely)


def _bodies(required: list[str], optional: list[str]) -> st.SearchStrategy[Any]:
    """Mostly near-valid objects (each field plausible, sometimes any JSON); else any JSON."""
    objects = st.fixed_dictionaries(
        {field: _mostly(PLAUSIBLE[field], JSON) for field in required},
        optional={field: _mostly(PLAUSIBLE[field], JSON) for field in optional},
    )
    with_stranger = st.builds(lambda body, key, value: {**body, key: value},
                              objects, st.text(max_size=10), JSON)
    return _mostly(objects, with_stranger | JSON)


FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=_bodies(["name", "user_id"],
                   ["description", "estimated_time", "params", "executor"]))
async def test_fuzz_create_never_500(store: httpx.AsyncClient, body: Any) -> None:
    response = await store.post("/job/", json=body)
    event(f"status {response.status_code}")
    assert response.status_code in (201, 400), (body, response.text)
    if response.status_code == 201:
        job = (await store.get(f"/job/{response.json()['id']}")).json()
        assert job["params"] == body.get("params")


@FUZZ
@given(body=_bodies([], ["status", "progress", "result", "error", "attempts", "worker_id",
                        "description", "estimated_time"]))
async def test_fuzz_update_never_500(store: httpx.AsyncClient, body: Any) -> None:
    created = await store.post("/job/", json=GOOD)
    response = await store.put(f"/job/{created.json()['id']}", json=body)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 409), (body, response.text)


@FUZZ
@given(segment=st.text(min_size=1, max_size=40), query=st.text(max_size=40),
       method=st.sampled_from(["GET", "PUT", "DELETE", "POST"]))
async def test_fuzz_paths_and_queries_never_500(store: httpx.AsyncClient, segment: str,
                                                query: str, method: str) -> None:
    segment = quote(segment, safe="")
    for path in (f"/job/{segment}", f"/jobs/{segment}", f"/job/user/{segment}"):
        response = await store.request(method, path, params={"status": query, "cursor": query})
        assert response.status_code < 500, (method, path, query, response.text)
        response = await store.request(method, path, params={"limit": query, "offset": query})
        assert response.status_code < 500, (method, path, query, response.text)


@FUZZ
@given(content=st.binary(max_size=200))
async def test_fuzz_raw_bytes_never_500(store: httpx.AsyncClient, content: bytes) -> None:
    for method, path in [("POST", "/job/"), ("PUT", "/job/0123456789abcdef01234567")]:
        response = await store.request(method, path, content=content,
                                       headers={"content-type": "application/json"})
        assert response.status_code in (400, 404, 409), (content, response.text)
