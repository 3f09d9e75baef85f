"""The CLI prints a refusal as the API words it (a problem, docs/errors.md): the detail,
then each field the detail does not already name."""

from __future__ import annotations

import httpx

from backend.cli.commands import _batch_outcome, _message

PROBLEM = {"content-type": "application/problem+json"}


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, headers=PROBLEM)


def test_a_problem_prints_its_detail_and_the_fields_it_does_not_name() -> None:
    answer = _answer(400, {
        "type": "about:blank", "title": "Bad Request", "status": 400,
        "detail": "Invalid request body field job_name: required, but missing",
        "instance": "/api/v1/job_executor/async",
        "errors": [{"field": "job_name", "message": "required, but missing", "in": "body"},
                   {"field": "params.x", "message": "nested too deeply", "in": "body"}]})
    assert _message(answer) == ("Invalid request body field job_name: required, but missing "
                                "(params.x: nested too deeply)")


def test_a_problem_without_fields_prints_its_detail_alone() -> None:
    answer = _answer(409, {"type": "about:blank", "title": "Conflict", "status": 409,
                           "detail": "job 1 is running", "instance": "/x", "errors": [],
                           "current_status": "running"})
    assert _message(answer) == "job 1 is running"


def test_a_batch_prints_each_refused_item_with_its_status() -> None:
    answer = httpx.Response(207, json={"accepted": 1, "refused": 1, "results": [
        {"index": 0, "job_id": "6b173bfa2c0f68da492b388d"},
        {"index": 1, "status": 422, "title": "Unprocessable Entity",
         "detail": "unknown task 'nope'; valid tasks: echo",
         "errors": [{"field": "job_name", "message": "unknown task", "in": "body"}]}]})
    printed, accepted = _batch_outcome(answer, [3, 4])
    assert accepted == 1
    assert printed == ["line 3: 6b173bfa2c0f68da492b388d",
                       "line 4: refused (422): unknown task 'nope'; valid tasks: echo"]
