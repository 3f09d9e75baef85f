"""What every error answer of the kernel and the data service looks like (docs/errors.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute

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


_PARAM = re.compile(r"\{(\w+):\w+\}")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_WITH_BODY = {"POST", "PUT", "PATCH"}
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Route:
    """One route of an app's route table: its path (``{job_id:str}`` as declared), the
    methods it answers and whether it asks who calls."""

    path: str
    methods: frozenset[str]
    public: bool

    def with_params(self, value: str) -> str:
        return _PARAM.sub(value, self.path)

    @property
    def wrong_method(self) -> str:
        return next(method for method in _METHODS if method not in self.methods)


def routes_of(app: Litestar, public: Callable[[str, Any], bool]) -> list[Route]:
    """Every HTTP route of ``app`` (mounted file servers aside), from its route table, so a
    route added later is walked too."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        methods = frozenset(route.methods - {"OPTIONS", "HEAD"})
        # The handler of the method walked (route_handlers holds Litestar's OPTIONS
        # handler too, in no set order).
        walked = sorted(methods)[0]
        handler = next(h for h in route.route_handlers if walked in h.http_methods)
        found.append(Route(route.path, methods, public(route.path, handler)))
    return found


async def walk(route: Route, signed_in: httpx.AsyncClient, anonymous: httpx.AsyncClient,
               ) -> list[dict[str, Any]]:
    """Bad requests of every kind that fits ``route``: the wrong method (a 405), no
    credentials (a 401, where the route asks), an id or a path segment that matches
    nothing, a body that is not JSON; each error answer checked as a problem."""
    problems = []
    method = sorted(route.methods)[0]
    wrong = await signed_in.request(route.wrong_method, route.with_params("0" * 24),
                                    content=b"{}" if route.wrong_method in _WITH_BODY else None,
                                    headers=JSON if route.wrong_method in _WITH_BODY else {})
    problems.append(problem_of(wrong, 405))
    assert route.wrong_method in wrong.json()["detail"]
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) >= route.methods, wrong.headers
    if not route.public:
        problems.append(problem_of(await anonymous.request(
            method, route.with_params("0" * 24), content=b"{}" if method in _WITH_BODY else None,
            headers=JSON if method in _WITH_BODY else {}), 401))
    if _PARAM.search(route.path):
        for value in ("0" * 24, "nope!", "0" * 32):  # unknown ids, a malformed one
            answer = await signed_in.request(method, route.with_params(value), content=b"{"
                                             if method in _WITH_BODY else None,
                                             headers=JSON if method in _WITH_BODY else {})
            if answer.status_code >= 400:
                problems.append(problem_of(answer))
                assert answer.status_code != 500, answer.text
    for body_method in sorted(route.methods & _WITH_BODY):
        answer = await signed_in.request(body_method, route.with_params("0" * 24),
                                         content=b'{"not json', headers=JSON)
        if answer.status_code >= 300:  # a route may read no body at all (sign-out)
            assert answer.status_code >= 400 and answer.status_code != 500, answer.text
            problems.append(problem_of(answer))
    return problems
