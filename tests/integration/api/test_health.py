"""Probes, the OpenAPI document, CORS and the web app the kernel serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.api.conftest import Kernel, OpenKernel, closed_url
from tests.problems import problem_of

pytestmark = pytest.mark.parametrize("backend", ["redis"])


async def test_ready_when_store_and_queue_answer(kernel: Kernel) -> None:
    assert (await kernel.http.get("/healthz")).status_code == 200
    ready = await kernel.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"data_service": "ok", "queue": "ok"}


@pytest.mark.parametrize(("down", "failed"), [
    ("DATA_SERVICE_URL", "data_service"),
    ("REDIS_URL", "queue"),
])
async def test_not_ready_names_what_is_down(open_kernel: OpenKernel, down: str,
                                            failed: str) -> None:
    kernel = await open_kernel(signed_in=False,
                               **{down: closed_url("redis" if down == "REDIS_URL" else "http")})
    assert (await kernel.http.get("/healthz")).status_code == 200  # alive, just not ready
    ready = await kernel.http.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert failed in body["detail"]
    assert body["checks"][failed] != "ok"
    assert [name for name, result in body["checks"].items() if result != "ok"] == [failed]


async def test_openapi_and_cors(open_kernel: OpenKernel) -> None:
    closed = await open_kernel()
    schema = (await closed.http.get("/schema/openapi.json")).json()
    assert {"/api/v1/job_executor/async", "/api/v1/jobs", "/api/v1/jobs/{job_id}",
            "/api/v1/jobs/{job_id}/events", "/api/v1/tasks"} <= schema["paths"].keys()
    ask = {"origin": "http://localhost:4200", "access-control-request-method": "GET"}
    # No CORS_ORIGINS: no other origin may call the kernel from a browser.
    refused = await closed.http.options("/api/v1/tasks", headers=ask)
    assert "access-control-allow-origin" not in refused.headers
    opened = await open_kernel(CORS_ORIGINS="http://localhost:4200")
    preflight = await opened.http.options("/api/v1/tasks", headers=ask)
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:4200"


async def test_serves_the_web_app_with_route_fallback(open_kernel: OpenKernel,
                                                      tmp_path: Path) -> None:
    dist = tmp_path / "browser"
    dist.mkdir()
    (dist / "index.html").write_text("<app-root></app-root>")
    (dist / "main-ABC.js").write_text("console.log(1)")
    kernel = await open_kernel(FRONTEND_DIST=str(dist))

    for path in ("/", "/jobs/0123456789abcdef01234567", "/submit"):
        page = await kernel.http.get(path)
        assert page.status_code == 200, path
        assert "<app-root>" in page.text and page.headers["content-type"].startswith("text/html")
        # Every page carries the security headers, the app routes' fallback included.
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"], path
        assert page.headers["x-content-type-options"] == "nosniff"
    assert (await kernel.http.get("/main-ABC.js")).text == "console.log(1)"
    assert (await kernel.http.get("/missing-XYZ.js")).status_code == 404
    for path in ("/api/v1/nothing", "/api/nothing"):
        unknown = problem_of(await kernel.http.get(path), 404)
        assert path in unknown["detail"]
    assert (await kernel.http.get("/api/v1/tasks")).status_code == 200
    assert (await kernel.http.get("/schema/openapi.json")).status_code == 200
