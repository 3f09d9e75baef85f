"""Every route of the kernel, taken from its route table, answers bad requests (the
wrong method, no credentials, an unknown or malformed id, a body that is not JSON) with
the one error shape of docs/errors.md. A route added later is walked as well."""

from __future__ import annotations

import re
from typing import Any

import pytest

from backend.api.security import PUBLIC_PATHS
from tests.integration.api.conftest import Kernel
from tests.problems import problem_of, routes_of, walk
from tests.services import TEST_PASSWORD

pytestmark = pytest.mark.parametrize("backend", ["redis"])


def _public(path: str, handler: Any) -> bool:
    return bool(handler.opt.get("exclude_from_auth")) or any(
        re.match(pattern, path) for pattern in PUBLIC_PATHS)


async def test_every_route_answers_bad_requests_with_a_problem(kernel: Kernel) -> None:
    routes = routes_of(kernel.app, _public)
    assert {"/api/v1/job_executor/async", "/api/v1/jobs/{job_id:str}",
            "/api/v1/jobs/batch", "/healthz"} <= {route.path for route in routes}
    anonymous = await kernel.client()
    statuses = set()
    for route in routes:
        for body in await walk(route, kernel.http, anonymous):
            statuses.add(body["status"])
    assert {400, 401, 404, 405} <= statuses


async def test_an_unknown_path_is_a_problem_naming_it(kernel: Kernel) -> None:
    body = problem_of(await kernel.http.get("/api/v1/no-such-thing"), 404)
    assert "/api/v1/no-such-thing" in body["detail"] and body["errors"] == []


async def test_a_browser_post_without_the_csrf_token_is_a_problem(kernel: Kernel,
                                                                 user: str) -> None:
    browser = await kernel.client()
    signed_in = await browser.post("/api/v1/auth/login", json={"username": user,
                                                               "password": TEST_PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    body = problem_of(await browser.post("/api/v1/auth/logout"), 403)
    assert "CSRF" in body["detail"] and "X-CSRFToken" in body["detail"]
