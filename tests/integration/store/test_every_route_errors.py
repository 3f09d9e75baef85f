"""Every route of the data service, taken from its route table, answers bad requests (the
wrong method, no service token, an unknown or malformed id, a body that is not JSON) with
the one error shape of docs/errors.md. A route added later is walked as well."""

from __future__ import annotations

from typing import Any

import httpx

from backend.store.app import create_app
from backend.store.guards import PUBLIC
from tests.integration.store.conftest import store_settings
from tests.problems import problem_of, routes_of, walk


def _public(path: str, handler: Any) -> bool:
    return bool(handler.opt.get(PUBLIC))


async def test_every_route_answers_bad_requests_with_a_problem(
        store: httpx.AsyncClient, mongo_url: str) -> None:
    # The same app as the one serving ``store`` (its route table; it is never started).
    routes = routes_of(create_app(store_settings(mongo_url, "store_inprocess")), _public)
    assert {"/job", "/job/{job_id:str}", "/jobs/bulk", "/readyz"} <= {
        route.path for route in routes}
    anonymous = httpx.AsyncClient(transport=store._transport, base_url=store.base_url)
    statuses = set()
    async with anonymous:
        for route in routes:
            for body in await walk(route, store, anonymous):
                statuses.add(body["status"])
    assert {400, 401, 404, 405} <= statuses


async def test_an_unknown_path_is_a_problem_naming_it(store: httpx.AsyncClient) -> None:
    unknown = problem_of(await store.get("/no-such-thing"), 404)
    assert "/no-such-thing" in unknown["detail"] and unknown["errors"] == []
