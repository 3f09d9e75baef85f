"""Every refusal says what was wrong in a sentence (never a Python repr or a bare regex),
names the field, and carries its structured data in ``extra``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Kernel

pytestmark = pytest.mark.parametrize("backend", ["redis"])

SUBMIT = "/api/v1/job_executor/async"
JSON = {"content-type": "application/json"}


def assert_plain(body: dict[str, Any]) -> None:
    detail = str(body["detail"])
    for repr_mark in ("{'", "[{", "'}", "\\\\"):
        assert repr_mark not in detail, detail
    assert body.get("extra"), body


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
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert_plain(body)
    assert body["extra"][0]["key"] == field and field in body["detail"]
    assert words in body["detail"] and words in body["extra"][0]["message"]
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
async def test_every_400_is_a_sentence_with_extra(kernel: Kernel, method: str, path: str,
                                                  content: str | bytes | None) -> None:
    answer = await kernel.http.request(method, path, content=content,
                                       headers=JSON if content is not None else {})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert_plain(body)
    assert isinstance(body["extra"], list) and body["extra"][0]["key"]


async def test_a_user_id_query_states_the_rule(kernel: Kernel) -> None:
    body = (await kernel.http.get("/api/v1/jobs", params={"user_id": "a/b"})).json()
    assert body["extra"][0]["key"] == "user_id"
    assert "1 to 128 characters" in body["detail"] and "'/'" in body["detail"]


async def test_bad_cursor_comes_back_as_the_data_service_said_it(kernel: Kernel) -> None:
    body = (await kernel.http.get("/api/v1/jobs", params={"cursor": "zz"})).json()
    assert body["extra"][0]["key"] == "cursor" and body["extra"][0]["source"] == "query"
    assert "cursor" in body["detail"] and "data service refused" not in body["detail"]


async def test_409_and_422_are_sentences_with_extra(kernel: Kernel, user: str) -> None:
    job_id = (await kernel.submit(user)).json()["job_id"]
    assert (await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 200
    again = await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert_plain(again.json())
    assert again.json()["extra"] == {"current_status": "cancelled"}
    unknown = await kernel.submit(user, "no-such-task")
    assert unknown.status_code == 422
    assert_plain(unknown.json())
    assert unknown.json()["extra"][0]["key"] == "job_name"


async def test_the_data_service_answers_the_same_way(store: httpx.AsyncClient,
                                                     kernel: Kernel, user: str) -> None:
    missing = await store.post("/job/", json={"name": "echo"})
    assert missing.status_code == 400
    assert_plain(missing.json())
    assert missing.json()["extra"][0]["key"] == "user_id" and "user_id" in missing.json()["detail"]
    pattern = await store.post("/job/", json={"name": "echo", "user_id": "a b"})
    assert "none of them a space" in pattern.json()["detail"]
    job_id = (await kernel.submit(user)).json()["job_id"]
    await store.put(f"/job/{job_id}", json={"status": "cancelled"})
    conflict = await store.put(f"/job/{job_id}", json={"status": "running"})
    assert conflict.status_code == 409
    assert conflict.json()["extra"] == {"current_status": "cancelled"}
    assert conflict.json()["current_status"] == "cancelled"
