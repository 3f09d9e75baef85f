"""Every refusal says what was wrong in a sentence (never a Python repr or a bare regex),
names the field in ``errors``, and carries its structured data in its own members."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Kernel
from tests.problems import problem_of

pytestmark = pytest.mark.parametrize("backend", ["redis"])

SUBMIT = "/api/v1/job_executor/async"
JSON = {"content-type": "application/json"}


def assert_named(answer: httpx.Response, status: int) -> dict[str, Any]:
    body = problem_of(answer, status)
    assert body["errors"], body
    return body


@pytest.mark.parametrize(("content", "field", "words"), [
    ('{"estimated_time": 1}', "job_name", "missing"),
    ('{"job_name": "echo"}', "estimated_time", "missing"),
    ('{"job_name": "echo", "estimated_time": 1, "colour": "red"}', "colour", "not a field"),
    ('{"job_name": "echo", "estimated_time": 1, "params": [1]}', "params", "JSON object"),
    ('{"job_name": "echo", "estimated_time": "5"}', "estimated_time", "number"),
    ('{"job_name": "echo", "estimated_time": 1, "user_id": "a b"}', "user_id",
     "none of them a space"),
    ('{"job_name": "bad name!", "estimated_time": 1}', "job_name", "letters, digits"),
])
async def test_a_bad_field_is_named_in_words(kernel: Kernel, content: str, field: str,
                                             words: str) -> None:
    answer = await kernel.http.post(SUBMIT, content=content, headers=JSON)
    body = assert_named(answer, 400)
    assert body["errors"][0]["field"] == field and field in body["detail"]
    assert words in body["detail"] and words in body["errors"][0]["message"]
    assert "regex" not in body["detail"] and "^[" not in body["detail"]


@pytest.mark.parametrize(("method", "path", "content"), [
    ("POST", SUBMIT, ""),
    ("POST", SUBMIT, "[]"),
    ("POST", SUBMIT, '{"job_name": '),
    ("POST", SUBMIT, b'{"job_name": "\xff"}'),
    ("POST", SUBMIT, '{"job_name": "echo", "estimated_time": 1, "params": {"a": '
                     + "[" * 5000 + "]" * 5000 + "}}"),
    ("POST", SUBMIT, '{"job_name": "echo", "estimated_time": 604800}'),
    ("GET", "/api/v1/jobs/nope", None),
    ("GET", "/api/v1/jobs?limit=0", None),
    ("GET", "/api/v1/jobs?user_id=a%20b", None),
    ("GET", "/api/v1/jobs?cursor=not-a-cursor", None),  # refused by the data service
    ("GET", "/api/v1/jobs?status=done", None),
])
async def test_every_400_is_a_sentence_naming_the_field(kernel: Kernel, method: str, path: str,
                                                  content: str | bytes | None) -> None:
    answer = await kernel.http.request(method, path, content=content,
                                       headers=JSON if content is not None else {})
    assert_named(answer, 400)


async def test_a_user_id_query_states_the_rule(kernel: Kernel) -> None:
    body = (await kernel.http.get("/api/v1/jobs", params={"user_id": "a/b"})).json()
    assert body["errors"][0]["field"] == "user_id" and body["errors"][0]["in"] == "query"
    assert "1 to 128 characters" in body["detail"] and "'/'" in body["detail"]


async def test_bad_cursor_comes_back_as_the_data_service_said_it(kernel: Kernel) -> None:
    body = (await kernel.http.get("/api/v1/jobs", params={"cursor": "zz"})).json()
    assert body["errors"] == [{"field": "cursor", "in": "query",
                               "message": body["errors"][0]["message"]}]
    assert "cursor" in body["detail"] and "data service refused" not in body["detail"]


async def test_409_and_422_are_sentences_with_their_data(kernel: Kernel, user: str) -> None:
    job_id = (await kernel.submit(user)).json()["job_id"]
    assert (await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 200
    again = problem_of(await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel"), 409)
    assert again["current_status"] == "cancelled" and again["errors"] == []
    assert again["title"] == "Conflict"
    unknown = assert_named(await kernel.submit(user, "no-such-task"), 422)
    assert unknown["errors"][0]["field"] == "job_name"


async def test_the_data_service_answers_the_same_way(store: httpx.AsyncClient,
                                                     kernel: Kernel, user: str) -> None:
    missing = assert_named(await store.post("/job/", json={"name": "echo"}), 400)
    assert missing["errors"][0]["field"] == "user_id" and "user_id" in missing["detail"]
    pattern = await store.post("/job/", json={"name": "echo", "user_id": "a b"})
    assert "none of them a space" in pattern.json()["detail"]
    job_id = (await kernel.submit(user)).json()["job_id"]
    await store.put(f"/job/{job_id}", json={"status": "cancelled"})
    conflict = problem_of(await store.put(f"/job/{job_id}", json={"status": "running"}), 409)
    assert conflict["current_status"] == "cancelled"


@pytest.mark.parametrize(("query", "field", "words"), [
    ({"all": "maybe"}, "all", "true or false"),
    ({"limit": "0"}, "limit", "at least 1"),
    ({"status": "done"}, "status", "not one of the allowed values"),
])
async def test_a_query_parameter_is_named_as_it_is_sent(kernel: Kernel, query: dict[str, str],
                                                        field: str, words: str) -> None:
    body = assert_named(await kernel.http.get("/api/v1/jobs", params=query), 400)
    assert body["errors"][0] == {"field": field, "in": "query",
                                 "message": body["errors"][0]["message"]}
    assert words in body["errors"][0]["message"] and f"query parameter {field}:" in body["detail"]
    assert "all_users" not in answer_text(body) and "ParamType" not in answer_text(body)


def answer_text(body: dict[str, Any]) -> str:
    return repr(body)
