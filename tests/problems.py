"""What every error answer of the kernel and the data service looks like (docs/errors.md)."""

from __future__ import annotations

import re
from typing import Any

import httpx

MEMBERS = {"type", "title", "status", "detail", "instance", "errors"}
EXTENSIONS = {"retry_after_seconds", "job_id", "job_ids", "current_status", "limit_bytes",
              "checks"}
# A Python repr or internal name leaking into words meant for people.
_REPR = re.compile(r"ParamType\.|<[^<>]+>|\{'|\[\{|'\}|\\\\|Error\(|object at 0x")


def assert_plain(text: Any) -> None:
    assert isinstance(text, str) and text.strip(), text
    assert not _REPR.search(text), text


def problem_of(answer: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The answer's problem body, checked member by member; ``status`` if given."""
    if status is not None:
        assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body = answer.json()
    assert isinstance(body, dict), body
    assert MEMBERS <= body.keys() <= MEMBERS | EXTENSIONS, body
    assert body["type"] == "about:blank", body
    assert body["status"] == answer.status_code, body
    assert isinstance(body["title"], str) and body["title"], body
    assert body["instance"].rstrip("/") == answer.request.url.path.rstrip("/"), body
    assert_plain(body["detail"])
    assert isinstance(body["errors"], list), body
    for error in body["errors"]:
        assert set(error) == {"field", "message", "in"}, error
        assert error["field"] and error["in"] in ("body", "query", "path", "header", "cookie")
        assert_plain(error["message"])
    return body
